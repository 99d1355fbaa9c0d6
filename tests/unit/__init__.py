"""Pure tests of one package each: no sockets, fake clocks."""
