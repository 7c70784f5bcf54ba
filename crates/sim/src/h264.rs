//! A tiny H.264 encoder for the simulated camera's test pattern: Baseline profile, CAVLC, one
//! slice per picture. An IDR picture is made of `I_PCM` macroblocks (raw samples, no prediction
//! or transform to get right) and every other picture is a P picture whose macroblocks are all
//! skipped (a copy of the previous one), which any decoder accepts.
//!
//! Invariants: every NAL unit returned is complete (header byte + escaped RBSP, no start code);
//! no PCM sample is 0, so no `I_PCM` macroblock needs escaping; a [`Pattern`] is a pure
//! function of its picture counter, so two cameras stream the same bytes.

/// The parameter sets and pictures of one test-pattern stream.
#[derive(Debug, Clone)]
pub struct Pattern {
    width_mbs: u32,
    height_mbs: u32,
    /// Pictures from one IDR to the next, the IDR included.
    gop: u32,
}

/// `log2_max_frame_num_minus4` = 0: `frame_num` is 4 bits and wraps at 16.
const FRAME_NUM_BITS: u32 = 4;
/// `mb_type` of an `I_PCM` macroblock in an I slice.
const MB_TYPE_I_PCM: u32 = 25;
/// `slice_type` values meaning "all slices of the picture are of this type".
const SLICE_P: u32 = 5;
const SLICE_I: u32 = 7;

impl Pattern {
    /// A `width`×`height` pixel pattern (each a positive multiple of 16) with an IDR every
    /// `gop` pictures (at least 1).
    pub fn new(width: u32, height: u32, gop: u32) -> Pattern {
        Pattern {
            width_mbs: (width / 16).max(1),
            height_mbs: (height / 16).max(1),
            gop: gop.max(1),
        }
    }

    /// The sequence parameter set NAL unit.
    pub fn sps(&self) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(66, 8); // profile_idc: Baseline
        w.bits(0b1100_0000, 8); // constraint_set0 and set1: Constrained Baseline
        w.bits(30, 8); // level_idc 3.0
        w.ue(0); // seq_parameter_set_id
        w.ue(FRAME_NUM_BITS - 4); // log2_max_frame_num_minus4
        w.ue(2); // pic_order_cnt_type: output order is decoding order
        w.ue(1); // max_num_ref_frames
        w.bit(false); // gaps_in_frame_num_value_allowed_flag
        w.ue(self.width_mbs - 1);
        w.ue(self.height_mbs - 1);
        w.bit(true); // frame_mbs_only_flag
        w.bit(true); // direct_8x8_inference_flag
        w.bit(false); // frame_cropping_flag
        w.bit(false); // vui_parameters_present_flag
        nal(3, 7, w.trailing())
    }

    /// The picture parameter set NAL unit.
    pub fn pps(&self) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(0); // pic_parameter_set_id
        w.ue(0); // seq_parameter_set_id
        w.bit(false); // entropy_coding_mode_flag: CAVLC
        w.bit(false); // bottom_field_pic_order_in_frame_present_flag
        w.ue(0); // num_slice_groups_minus1
        w.ue(0); // num_ref_idx_l0_default_active_minus1
        w.ue(0); // num_ref_idx_l1_default_active_minus1
        w.bit(false); // weighted_pred_flag
        w.bits(0, 2); // weighted_bipred_idc
        w.se(0); // pic_init_qp_minus26
        w.se(0); // pic_init_qs_minus26
        w.se(0); // chroma_qp_index_offset
        w.bit(false); // deblocking_filter_control_present_flag
        w.bit(false); // constrained_intra_pred_flag
        w.bit(false); // redundant_pic_cnt_present_flag
        nal(3, 8, w.trailing())
    }

    /// Whether picture `n` (counted from 0) is an IDR.
    pub fn is_idr(&self, n: u64) -> bool {
        n.is_multiple_of(u64::from(self.gop))
    }

    /// The NAL units of picture `n`: SPS, PPS and an IDR slice for a keyframe, one all-skip P
    /// slice otherwise.
    pub fn picture(&self, n: u64) -> Vec<Vec<u8>> {
        let gop = u64::from(self.gop);
        if self.is_idr(n) {
            vec![self.sps(), self.pps(), self.idr(n / gop)]
        } else {
            // Every picture is a reference picture, so frame_num counts up from the IDR's 0.
            vec![self.skip((n % gop) as u32)]
        }
    }

    fn idr(&self, idr_number: u64) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(SLICE_I);
        w.ue(0); // pic_parameter_set_id
        w.bits(0, FRAME_NUM_BITS); // frame_num
        w.ue((idr_number % 2) as u32); // idr_pic_id: consecutive IDRs differ
        w.bit(false); // no_output_of_prior_pics_flag
        w.bit(false); // long_term_reference_flag
        w.se(0); // slice_qp_delta
        let shade = (idr_number % 8) as u32;
        for y in 0..self.height_mbs {
            for x in 0..self.width_mbs {
                w.ue(MB_TYPE_I_PCM);
                w.align_zero(); // pcm_alignment_zero_bit
                // A diagonal gradient that moves each second; 16..=235 is never 0.
                let luma = 16 + ((x + y + shade) * 24) % 220;
                for _ in 0..256 {
                    w.bits(luma, 8);
                }
                for chroma in [96, 160] {
                    for _ in 0..64 {
                        w.bits(chroma, 8);
                    }
                }
            }
        }
        nal(3, 5, w.trailing())
    }

    fn skip(&self, frame_num: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(SLICE_P);
        w.ue(0); // pic_parameter_set_id
        w.bits(frame_num % (1 << FRAME_NUM_BITS), FRAME_NUM_BITS);
        w.bit(false); // num_ref_idx_active_override_flag
        w.bit(false); // ref_pic_list_modification_flag_l0
        w.bit(false); // adaptive_ref_pic_marking_mode_flag
        w.se(0); // slice_qp_delta
        w.ue(self.width_mbs * self.height_mbs); // mb_skip_run: the whole picture
        nal(2, 1, w.trailing())
    }
}

/// A NAL unit: the header byte, then `rbsp` with emulation prevention bytes inserted.
fn nal(ref_idc: u8, unit_type: u8, rbsp: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 1);
    out.push(ref_idc << 5 | unit_type);
    let mut zeros = 0;
    for byte in rbsp {
        if zeros >= 2 && byte <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Writes bits most significant first, with the Exp-Golomb codes of H.264 §9.1.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte, 0 when it is full (or there is none).
    used: u32,
}

impl BitWriter {
    fn bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if let (true, Some(last)) = (bit, self.bytes.last_mut()) {
            *last |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// The low `count` bits of `value`.
    fn bits(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.bit(value >> i & 1 == 1);
        }
    }

    /// Unsigned Exp-Golomb `ue(v)`.
    fn ue(&mut self, value: u32) {
        let code = u64::from(value) + 1;
        let len = 64 - code.leading_zeros();
        for _ in 1..len {
            self.bit(false);
        }
        for i in (0..len).rev() {
            self.bit(code >> i & 1 == 1);
        }
    }

    /// Signed Exp-Golomb `se(v)`.
    fn se(&mut self, value: i32) {
        let code = if value > 0 {
            2 * value.unsigned_abs() - 1
        } else {
            2 * value.unsigned_abs()
        };
        self.ue(code);
    }

    fn align_zero(&mut self) {
        while self.used != 0 {
            self.bit(false);
        }
    }

    /// `rbsp_trailing_bits`: a 1 and zeros to the byte boundary; the finished RBSP.
    fn trailing(mut self) -> Vec<u8> {
        self.bit(true);
        self.align_zero();
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what [`BitWriter`] writes, from an RBSP with emulation prevention removed.
    struct BitReader {
        bytes: Vec<u8>,
        pos: usize,
    }

    impl BitReader {
        fn new(nal: &[u8]) -> BitReader {
            let mut bytes = Vec::new();
            let mut zeros = 0;
            for &b in &nal[1..] {
                if zeros >= 2 && b == 3 {
                    zeros = 0;
                    continue;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                bytes.push(b);
            }
            BitReader { bytes, pos: 0 }
        }
        fn bit(&mut self) -> u32 {
            let b = self.bytes[self.pos / 8] >> (7 - self.pos % 8) & 1;
            self.pos += 1;
            u32::from(b)
        }
        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |acc, _| acc << 1 | self.bit())
        }
        fn ue(&mut self) -> u32 {
            let mut zeros = 0;
            while self.bit() == 0 {
                zeros += 1;
            }
            (1 << zeros) - 1 + self.bits(zeros)
        }
        fn se(&mut self) -> i32 {
            let k = self.ue() as i32;
            if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) }
        }
        /// Whether only `rbsp_trailing_bits` remain.
        fn at_trailing_bits(&mut self) -> bool {
            self.bit() == 1
                && (self.pos.is_multiple_of(8) || self.bits(8 - (self.pos % 8) as u32) == 0)
                && self.pos == self.bytes.len() * 8
        }
    }

    #[test]
    fn exp_golomb_codes_round_trip() {
        let mut w = BitWriter::default();
        let values = [0, 1, 2, 3, 7, 8, 25, 255, 65_535];
        for v in values {
            w.ue(v);
        }
        for v in [0, 1, -1, 2, -2, 100, -100] {
            w.se(v);
        }
        let mut r = BitReader::new(&nal(0, 0, w.trailing()));
        for v in values {
            assert_eq!(r.ue(), v);
        }
        for v in [0, 1, -1, 2, -2, 100, -100] {
            assert_eq!(r.se(), v);
        }
        assert!(r.at_trailing_bits());
    }

    #[test]
    fn sps_declares_the_size_and_baseline_profile() {
        let sps = Pattern::new(64, 32, 10).sps();
        assert_eq!(sps[..4], [0x67, 66, 0xc0, 30]);
        let mut r = BitReader::new(&sps);
        r.bits(24);
        assert_eq!((r.ue(), r.ue(), r.ue(), r.ue(), r.bit()), (0, 0, 2, 1, 0));
        assert_eq!((r.ue() + 1) * 16, 64);
        assert_eq!((r.ue() + 1) * 16, 32);
        assert_eq!((r.bit(), r.bit(), r.bit(), r.bit()), (1, 1, 0, 0));
        assert!(r.at_trailing_bits());
        assert_eq!(Pattern::new(64, 32, 10).pps()[0], 0x68);
    }

    #[test]
    fn idr_holds_raw_macroblocks_and_p_pictures_skip_them_all() {
        let pattern = Pattern::new(32, 32, 3);
        let idr = pattern.picture(0);
        assert_eq!(idr.len(), 3);
        assert_eq!(idr[2][0], 0x65);
        let mut r = BitReader::new(&idr[2]);
        assert_eq!((r.ue(), r.ue(), r.ue(), r.bits(4), r.ue()), (0, 7, 0, 0, 0));
        assert_eq!((r.bit(), r.bit(), r.se()), (0, 0, 0));
        for _ in 0..4 {
            assert_eq!(r.ue(), MB_TYPE_I_PCM);
            r.pos = r.pos.div_ceil(8) * 8;
            let samples: Vec<u32> = (0..384).map(|_| r.bits(8)).collect();
            assert!(samples.iter().all(|&s| s != 0));
        }
        assert!(r.at_trailing_bits());

        let p = pattern.picture(2);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0][0], 0x41);
        let mut r = BitReader::new(&p[0]);
        assert_eq!((r.ue(), r.ue(), r.ue(), r.bits(4)), (0, 5, 0, 2));
        assert_eq!((r.bit(), r.bit(), r.bit(), r.se(), r.ue()), (0, 0, 0, 0, 4));
        assert!(r.at_trailing_bits());

        assert!(pattern.is_idr(3) && !pattern.is_idr(4));
        assert_ne!(pattern.picture(3)[2], idr[2], "the pattern moves");
    }

    #[test]
    fn emulation_prevention_escapes_start_code_prefixes() {
        assert_eq!(
            nal(0, 1, vec![0, 0, 1, 0, 0, 0, 0, 0, 3, 5]),
            [1, 0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 0, 3, 5]
        );
    }
}
