// Video and audio counters of some peer connections (closed ones left out), for the video call test: loaded by
// the customer page and injected into the agent page, so both sides are measured the same way.
"use strict";
window.rtcStats = async function (pcs) {
  const out = { videoFramesDecoded: 0, videoBytesReceived: 0, audioBytesReceived: 0, videoBytesSent: 0, pcs: 0,
                videoFrameWidth: 0, videoFrameHeight: 0, videoFramesEncoded: 0 };
  for (const pc of pcs) {
    if (pc.connectionState === "closed") continue;
    out.pcs += 1;
    (await pc.getStats()).forEach((r) => {
      const kind = r.kind || r.mediaType;
      if (r.type === "inbound-rtp" && kind === "video") {
        out.videoFramesDecoded += r.framesDecoded || 0; out.videoBytesReceived += r.bytesReceived || 0;
        out.videoFrameWidth = r.frameWidth || out.videoFrameWidth; out.videoFrameHeight = r.frameHeight || out.videoFrameHeight;
      }
      if (r.type === "inbound-rtp" && kind === "audio") out.audioBytesReceived += r.bytesReceived || 0;
      if (r.type === "outbound-rtp" && kind === "video") {
        out.videoBytesSent += r.bytesSent || 0; out.videoFramesEncoded += r.framesEncoded || 0;
      }
    });
  }
  return out;
};
