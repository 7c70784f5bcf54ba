//! RTP packets for H.264 (RFC 3550, RFC 6184 packetization mode 1) sent interleaved on an RTSP
//! connection (RFC 2326 §10.12): a NAL unit that fits travels alone, a bigger one in FU-A
//! fragments; the last packet of a picture carries the marker bit.

/// Payload type of the single video track in the simulators' SDP.
pub(crate) const PAYLOAD_TYPE: u8 = 96;
/// Largest RTP payload sent, in bytes (a typical camera's, under an Ethernet MTU).
const MAX_PAYLOAD: usize = 1400;
/// NAL unit type of an FU-A fragment.
const FU_A: u8 = 28;

/// The state of one RTP stream: sequence number, SSRC.
pub(crate) struct RtpSender {
    ssrc: u32,
    seq: u16,
}

impl RtpSender {
    pub fn new(ssrc: u32, first_seq: u16) -> RtpSender {
        RtpSender {
            ssrc,
            seq: first_seq,
        }
    }

    /// The RTP packets of one picture made of `nals`, at `timestamp` (90 kHz).
    pub fn picture(&mut self, nals: &[Vec<u8>], timestamp: u32) -> Vec<Vec<u8>> {
        let mut payloads = Vec::new();
        for nal in nals {
            fragment(nal, &mut payloads);
        }
        let last = payloads.len().saturating_sub(1);
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| self.packet(&payload, timestamp, i == last))
            .collect()
    }

    fn packet(&mut self, payload: &[u8], timestamp: u32, marker: bool) -> Vec<u8> {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80); // version 2, no padding, no extension, no CSRC
        packet.push(u8::from(marker) << 7 | PAYLOAD_TYPE);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        packet
    }
}

/// Appends the payloads carrying `nal`: itself, or FU-A fragments of at most [`MAX_PAYLOAD`].
fn fragment(nal: &[u8], payloads: &mut Vec<Vec<u8>>) {
    let Some((&header, body)) = nal.split_first() else {
        return;
    };
    if nal.len() <= MAX_PAYLOAD {
        payloads.push(nal.to_vec());
        return;
    }
    let indicator = header & 0xe0 | FU_A;
    let chunks: Vec<&[u8]> = body.chunks(MAX_PAYLOAD - 2).collect();
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i == last { 0x40 } else { 0 };
        let mut payload = vec![indicator, start | end | header & 0x1f];
        payload.extend_from_slice(chunk);
        payloads.push(payload);
    }
}

/// An RTSP interleaved frame: `$`, the channel, the length, the packet.
pub(crate) fn interleaved(channel: u8, packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + packet.len());
    frame.push(b'$');
    frame.push(channel);
    // Packets are at most MAX_PAYLOAD + 12 bytes, far below u16::MAX.
    frame.extend_from_slice(&(packet.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    frame.extend_from_slice(packet);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_nals_travel_alone_big_ones_in_fu_a_fragments_that_reassemble() {
        let big: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000u32).map(|i| (i % 251) as u8 + 1))
            .collect();
        let mut sender = RtpSender::new(7, 65_534);
        let packets = sender.picture(&[vec![0x67, 1], vec![0x68, 2], big.clone()], 9000);
        assert_eq!(packets.len(), 5);
        assert_eq!(packets[4][2..4], [0, 2], "sequence numbers wrap");
        let markers: Vec<bool> = packets.iter().map(|p| p[1] & 0x80 != 0).collect();
        assert_eq!(markers, [false, false, false, false, true]);
        assert!(packets.iter().all(|p| p[1] & 0x7f == PAYLOAD_TYPE));
        assert!(packets.iter().all(|p| p[4..8] == 9000u32.to_be_bytes()));
        assert_eq!(packets[0][12..], [0x67, 1]);

        let mut rebuilt = vec![packets[2][12] & 0xe0 | packets[2][13] & 0x1f];
        for (i, p) in packets[2..].iter().enumerate() {
            assert_eq!(p[12] & 0x1f, FU_A);
            assert_eq!(p[13] & 0x80 != 0, i == 0, "start bit");
            assert_eq!(p[13] & 0x40 != 0, i == 2, "end bit");
            assert!(p.len() - 12 <= MAX_PAYLOAD);
            rebuilt.extend_from_slice(&p[14..]);
        }
        assert_eq!(rebuilt, big);
        assert_eq!(interleaved(2, &[9, 9])[..], [b'$', 2, 0, 2, 9, 9]);
    }
}
