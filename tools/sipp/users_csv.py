"""Write a SIPp injection file of softphone users for tools/sipp/register_auth.xml.

    python tools/sipp/users_csv.py OUT.csv --realm cc.example.com --first 100000 --count 5000 [--password-format 'Pw-{user}!']
Each line: user;domain;[authentication username=U password=P] ([field2] is the Authorization header).
"""

from __future__ import annotations

import argparse
from typing import Iterable


def write_users_csv(path: str, users: Iterable[tuple[str, str]], domain: str, order: str = "SEQUENTIAL") -> int:
    n = 0
    with open(path, "w") as f:
        f.write(order + "\n")
        for user, password in users:
            f.write(f"{user};{domain};[authentication username={user} password={password}]\n")
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--realm", required=True)
    ap.add_argument("--first", type=int, default=100000)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--password-format", default="Pw-{user}!")
    a = ap.parse_args()
    users = ((str(u), a.password_format.format(user=u)) for u in range(a.first, a.first + a.count))
    print(write_users_csv(a.out, users, a.realm), "users written to", a.out)


if __name__ == "__main__":
    main()
