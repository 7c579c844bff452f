//! The 12-byte status message both sides send once a second, and the
//! scanner that finds it in what the peer sends: inside a TCP data stream,
//! or as the only content of a UDP test's control connection.

use super::{ProtoError, take};

pub const TAG: u8 = 0x07;
const CPU_FLAG: u8 = 0x80;
/// Bytes that identify a status: `07 ?? 00 00` (tag, CPU byte, zero padding).
const FRAME_START: usize = 4;

/// One status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Sender's CPU busy percentage; `None` when the CPU byte is 0x00, which
    /// RouterOS 6 sends for "no CPU information" (a raw load of 0 % reads
    /// the same and is taken as unknown too).
    pub cpu: Option<u8>,
    /// Starts at 1, +1 per message; not relied upon (layouts differ).
    pub seq: u32,
    /// Bytes the sender received in the last interval.
    pub bytes: u32,
}

impl Status {
    pub const LEN: usize = 12;

    /// Whether `b`, the first bytes of a candidate (any number of them), can
    /// begin a status: tag, any CPU byte, two zero bytes. Bytes not yet
    /// received cannot refute it.
    pub fn may_start(b: &[u8]) -> bool {
        b.first() == Some(&TAG) && b.get(2).is_none_or(|&x| x == 0) && b.get(3).is_none_or(|&x| x == 0)
    }

    /// Decodes `07 ?? 00 00 seq(LE) bytes(LE)`. The sequence number is not
    /// checked: older implementations put a big-endian one in bytes 1-4.
    pub fn parse(buf: &[u8]) -> Result<Status, ProtoError> {
        let b: [u8; 12] = take(buf)?;
        if !Status::may_start(&b) {
            return Err(ProtoError::BadStatus);
        }
        Ok(Status {
            cpu: decode_cpu(b[1]),
            seq: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            bytes: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }

    /// Emits the CPU byte as `0x80 | load`. Evidence: btest-rs put the load
    /// there with the flag after seeing RouterOS 7 do so [ROS-tested]; a
    /// raw load without the flag comes only from a third-party codec that
    /// nobody checked against RouterOS (protocol-reference §7, §11.2), so
    /// the flagged form stays what we send, and both are accepted.
    pub fn emit(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0] = TAG;
        b[1] = self.cpu.map_or(0, |c| CPU_FLAG | c.min(100));
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.bytes.to_le_bytes());
        b
    }
}

/// The CPU byte as `0x80 | load` or as a raw load: the load is the low
/// seven bits either way (clamped to 100); 0x00 means no information.
fn decode_cpu(b: u8) -> Option<u8> {
    (b != 0).then_some((b & !CPU_FLAG).min(100))
}

/// Where statuses can be in what the peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Zero payload: a frame start anywhere is a status.
    Zeros,
    /// Random payload written in `chunk`-byte blocks: only block starts are
    /// examined; `in_chunk` bytes of the current block are still to come.
    Random { chunk: u32, in_chunk: u32 },
    /// Nothing but statuses, back to back (a UDP test's control connection):
    /// a byte that does not start a frame is skipped, up to the next frame.
    Frames,
}

/// Finds status messages in what the peer sends, across reads.
///
/// Zero payload: any `07 ?? 00 00` starts a status (data bytes are all
/// zero), found with memchr. Random payload: only positions at the sender's
/// block boundaries are trusted, since random data holds frame starts
/// anywhere. Frames: statuses follow each other; anything else is skipped
/// (and counted) until the next frame start, so one stray byte costs no
/// status.
#[derive(Debug, Clone)]
pub struct StatusScanner {
    mode: Mode,
    /// A candidate split across reads: its first `held_len` bytes, which
    /// match the frame start as far as they go.
    held: [u8; Status::LEN],
    held_len: usize,
    /// Frames mode: bytes that were not part of a status.
    skipped: u64,
}

impl StatusScanner {
    pub fn zeros() -> StatusScanner {
        StatusScanner { mode: Mode::Zeros, held: [0; Status::LEN], held_len: 0, skipped: 0 }
    }

    pub fn random(chunk: u16) -> StatusScanner {
        StatusScanner { mode: Mode::Random { chunk: u32::from(chunk.max(1)), in_chunk: 0 }, ..StatusScanner::zeros() }
    }

    /// For a connection that carries only statuses (a UDP test's control
    /// connection), whatever the payload of the datagrams is.
    pub fn frames() -> StatusScanner {
        StatusScanner { mode: Mode::Frames, ..StatusScanner::zeros() }
    }

    /// Frames mode: bytes skipped because they were not part of a status
    /// (always 0 in the payload modes, where skipping is normal).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Bytes ahead that cannot hold a status and need not be looked at:
    /// the rest of a random-payload block (0 in the other modes).
    pub fn blind_run(&self) -> usize {
        match self.mode {
            Mode::Random { in_chunk, .. } if self.held_len == 0 => in_chunk as usize,
            _ => 0,
        }
    }

    /// Passes over `n` bytes (at most [`StatusScanner::blind_run`]) that
    /// were dropped unread.
    pub fn skip_blind(&mut self, n: usize) {
        if let Mode::Random { chunk, in_chunk } = self.mode {
            self.mode = Mode::Random { chunk, in_chunk: in_chunk.saturating_sub(n as u32) };
        }
    }

    /// Scans the next bytes of the stream, calling `found` for each status.
    pub fn feed(&mut self, data: &[u8], mut found: impl FnMut(Status)) {
        self.feed_raw(data, |s, _| found(s));
    }

    /// [`StatusScanner::feed`] that also hands out each status's 12 bytes
    /// as they arrived (for traces: the CPU byte's form is evidence).
    pub fn feed_raw(&mut self, data: &[u8], mut found: impl FnMut(Status, &[u8; Status::LEN])) {
        self.scan(data, &mut found);
    }

    fn scan(&mut self, mut data: &[u8], found: &mut impl FnMut(Status, &[u8; Status::LEN])) {
        while !data.is_empty() {
            if self.held_len > 0 {
                data = self.extend_held(data, found);
                continue;
            }
            data = match self.mode {
                Mode::Zeros | Mode::Frames => match memchr::memchr(TAG, data) {
                    Some(i) => {
                        self.skip(i);
                        self.candidate(&data[i..], found)
                    }
                    None => {
                        self.skip(data.len());
                        &[]
                    }
                },
                Mode::Random { chunk, in_chunk: 0 } if data[0] != TAG => {
                    self.mode = Mode::Random { chunk, in_chunk: chunk };
                    data
                }
                Mode::Random { in_chunk: 0, .. } => self.candidate(data, found),
                Mode::Random { chunk, in_chunk } => {
                    let n = (in_chunk as usize).min(data.len());
                    self.mode = Mode::Random { chunk, in_chunk: in_chunk - n as u32 };
                    &data[n..]
                }
            };
        }
    }

    /// `data` starts with the tag where a status may begin: reports it,
    /// holds its first bytes, or treats the tag as data. Returns the rest.
    fn candidate<'a>(&mut self, data: &'a [u8], found: &mut impl FnMut(Status, &[u8; Status::LEN])) -> &'a [u8] {
        if !Status::may_start(&data[..data.len().min(FRAME_START)]) {
            return self.not_a_status(data);
        }
        if let Some(frame) = data.get(..Status::LEN) {
            if let Ok(s) = Status::parse(frame) {
                let mut raw = [0u8; Status::LEN];
                raw.copy_from_slice(frame);
                found(s, &raw);
            }
            return &data[Status::LEN..];
        }
        self.held[..data.len()].copy_from_slice(data);
        self.held_len = data.len();
        &[]
    }

    /// The tag at `data[0]` does not start a status: one stray byte (zeros,
    /// frames), or the first byte of a data block (random). Returns what is
    /// still to scan.
    fn not_a_status<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        match self.mode {
            Mode::Zeros | Mode::Frames => {
                self.skip(1);
                &data[1..]
            }
            Mode::Random { chunk, .. } => {
                self.mode = Mode::Random { chunk, in_chunk: chunk };
                data
            }
        }
    }

    /// Adds the next bytes to a held candidate; returns the rest. Until the
    /// frame start is confirmed it takes one byte at a time, so a refuted
    /// candidate can be rescanned whole.
    fn extend_held<'a>(&mut self, data: &'a [u8], found: &mut impl FnMut(Status, &[u8; Status::LEN])) -> &'a [u8] {
        let len = self.held_len;
        if len < FRAME_START {
            let mut probe = self.held;
            probe[len] = data[0];
            if !Status::may_start(&probe[..=len]) {
                self.refute_held(found);
                // data[0] was not consumed: scanned again in the new state.
                return data;
            }
            self.held[len] = data[0];
            self.held_len += 1;
            return &data[1..];
        }
        let n = (Status::LEN - len).min(data.len());
        self.held[len..len + n].copy_from_slice(&data[..n]);
        self.held_len += n;
        if self.held_len == Status::LEN {
            self.held_len = 0;
            if let Ok(s) = Status::parse(&self.held) {
                let raw = self.held;
                found(s, &raw);
            }
        }
        &data[n..]
    }

    /// The held bytes (at most three: only bytes 2 and 3 can refute a frame
    /// start) were not a status: rescans them as what they are instead.
    /// The rescan holds fewer bytes than before, so this recursion ends.
    fn refute_held(&mut self, found: &mut impl FnMut(Status, &[u8; Status::LEN])) {
        let (held, len) = (self.held, self.held_len);
        self.held_len = 0;
        let rest = self.not_a_status(&held[..len]);
        self.scan(rest, found);
    }

    fn skip(&mut self, n: usize) {
        if self.mode == Mode::Frames {
            self.skipped += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(scanner: &mut StatusScanner, reads: &[&[u8]]) -> Vec<Status> {
        let mut out = Vec::new();
        for r in reads {
            scanner.feed(r, |s| out.push(s));
        }
        out
    }

    /// Scans `stream` cut in two at every position, and one byte per read;
    /// asserts every way finds `want`. Returns the scanner of the whole feed.
    fn at_every_split(new: impl Fn() -> StatusScanner, stream: &[u8], want: &[Status]) -> StatusScanner {
        for split in 0..=stream.len() {
            let mut sc = new();
            assert_eq!(collect(&mut sc, &[&stream[..split], &stream[split..]]), want, "split at {split}");
        }
        let mut sc = new();
        let reads: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(collect(&mut sc, &reads), want, "one byte per read");
        let mut sc = new();
        assert_eq!(collect(&mut sc, &[stream]), want, "whole");
        sc
    }

    #[test]
    fn parses_captured_routeros6_status() {
        let raw = [0x07, 0, 0, 0, 1, 0, 0, 0, 0x36, 0x6e, 0x03, 0];
        let s = Status::parse(&raw).unwrap();
        assert_eq!(s, Status { cpu: None, seq: 1, bytes: 224_822 });
        assert_eq!(s.emit(), raw);
    }

    #[test]
    fn cpu_byte_is_emitted_flagged_and_read_either_way() {
        let s = Status { cpu: Some(0), seq: 2, bytes: 0 };
        assert_eq!(s.emit()[1], 0x80);
        assert_eq!(Status::parse(&s.emit()).unwrap().cpu, Some(0));
        let mut raw = s.emit();
        for (byte, load) in [(0xd9, Some(89)), (0x59, Some(89)), (0x01, Some(1)), (0xff, Some(100)), (0x7f, Some(100))]
        {
            raw[1] = byte;
            assert_eq!(Status::parse(&raw).unwrap().cpu, load, "cpu byte {byte:#04x}");
        }
        raw[1] = 0;
        assert_eq!(Status::parse(&raw).unwrap().cpu, None);
        assert_eq!(Status { cpu: Some(250), seq: 1, bytes: 0 }.emit()[1], 0x80 | 100);
    }

    #[test]
    fn rejects_wrong_tag_padding_and_short_input() {
        assert_eq!(Status::parse(&[0u8; 12]), Err(ProtoError::BadStatus));
        let mut raw = Status { cpu: Some(5), seq: 1, bytes: 1 }.emit();
        raw[3] = 1;
        assert_eq!(Status::parse(&raw), Err(ProtoError::BadStatus));
        assert!(Status::parse(&[7u8; 11]).is_err());
        assert!(Status::may_start(&[7]) && Status::may_start(&[7, 0x42, 0]) && !Status::may_start(&[7, 0x42, 1]));
        assert!(!Status::may_start(&[]) && !Status::may_start(&[6, 0, 0, 0]));
    }

    #[test]
    fn finds_status_in_zero_stream_split_at_every_position() {
        let st = Status { cpu: Some(42), seq: 7, bytes: 0x0780_0707 };
        let mut stream = vec![0u8; 100];
        stream.extend_from_slice(&st.emit());
        stream.extend_from_slice(&[0u8; 50]);
        at_every_split(StatusScanner::zeros, &stream, &[st]);
    }

    #[test]
    fn raw_load_status_is_found_in_zero_stream() {
        let mut raw = Status { cpu: None, seq: 3, bytes: 77 }.emit();
        raw[1] = 0x59;
        let mut stream = vec![0u8; 30];
        stream.extend_from_slice(&raw);
        let want = Status { cpu: Some(89), seq: 3, bytes: 77 };
        at_every_split(StatusScanner::zeros, &stream, &[want]);
    }

    #[test]
    fn stray_tags_in_zero_stream_are_skipped() {
        let st = Status { cpu: Some(1), seq: 1, bytes: 5 };
        // A tag refuted by byte 2, one refuted by byte 3, and a tag right
        // before the real one (07 07 81 00: refuted by the real CPU byte).
        let mut stream = vec![0u8, 0x07, 0x01, 0x05, 0, 0x07, 0, 0, 0x09, 0x07];
        stream.extend_from_slice(&st.emit());
        at_every_split(StatusScanner::zeros, &stream, &[st]);
    }

    #[test]
    fn random_block_starting_with_the_tag_is_data_however_split() {
        // A block of 4 starting 07 01 05 (not a status), then 12 zero bytes.
        let mut stream = vec![0x07, 0x01, 0x05, 0];
        stream.extend_from_slice(&[0u8; 12]);
        at_every_split(|| StatusScanner::random(4), &stream, &[]);
        // Refuted by its fourth byte, with blocks shorter than the frame start.
        at_every_split(|| StatusScanner::random(1), &[0x07, 0x07, 0, 0x01, 0x05], &[]);
    }

    #[test]
    fn random_stream_trusts_only_block_boundaries() {
        let chunk = 16u16;
        let st = Status { cpu: Some(3), seq: 9, bytes: 1234 };
        // Blocks full of fake frame starts between real statuses.
        let mut block = [0x55u8; 16];
        for (i, b) in block.iter_mut().enumerate().skip(1) {
            *b = [0x07, 0xd9, 0, 0][i % 4];
        }
        let mut stream = Vec::new();
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&st.emit());
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&st.emit());
        at_every_split(|| StatusScanner::random(chunk), &stream, &[st, st]);
    }

    #[test]
    fn random_stream_read_only_at_boundaries_finds_every_status() {
        // What a receiver that drops each block's rest unread sees: it
        // reads a few bytes where the scanner looks and skips the run it
        // reports blind.
        let chunk = 256u16;
        let st = Status { cpu: Some(3), seq: 9, bytes: 1234 };
        let block = [0x07u8; 256];
        let mut stream = Vec::new();
        for i in 0..6 {
            stream.extend_from_slice(&block);
            if i % 2 == 1 {
                stream.extend_from_slice(&st.emit());
            }
        }
        for probe in [1, 5, 12] {
            let (mut sc, mut found, mut at, mut looked) = (StatusScanner::random(chunk), Vec::new(), 0, 0);
            while at < stream.len() {
                let blind = sc.blind_run().min(stream.len() - at);
                if blind > 0 {
                    sc.skip_blind(blind);
                    at += blind;
                    continue;
                }
                let n = probe.min(stream.len() - at);
                sc.feed(&stream[at..at + n], |s| found.push(s));
                at += n;
                looked += n;
            }
            assert_eq!(found, vec![st; 3], "probe {probe}");
            assert!(looked <= 6 * (probe + 3) + 3 * 12, "probe {probe}: looked at {looked} bytes");
        }
        assert_eq!(StatusScanner::zeros().blind_run(), 0, "zeros: every byte may start one");
        assert_eq!(StatusScanner::frames().blind_run(), 0);
    }

    fn statuses(n: u32) -> (Vec<u8>, Vec<Status>) {
        let sts: Vec<Status> =
            (1..=n).map(|seq| Status { cpu: Some(20 + seq as u8), seq, bytes: 1000 * seq }).collect();
        (sts.iter().flat_map(|s| s.emit()).collect(), sts)
    }

    #[test]
    fn frames_back_to_back_are_all_found() {
        let (stream, sts) = statuses(5);
        let sc = at_every_split(StatusScanner::frames, &stream, &sts);
        assert_eq!(sc.skipped(), 0);
    }

    #[test]
    fn a_byte_that_is_no_status_costs_no_status() {
        let (good, sts) = statuses(3);
        for junk in [&[0x42u8][..], &[0x07], &[0x07, 0x07], &[0x07, 0x80, 0x05], &[0x07, 0x80, 0, 0x01], &[0x42; 12]] {
            let mut stream = junk.to_vec();
            stream.extend_from_slice(&good);
            let sc = at_every_split(StatusScanner::frames, &stream, &sts);
            assert_eq!(sc.skipped(), junk.len() as u64, "junk {junk:02x?}");
        }
        // Between statuses, too.
        let mut stream = good[..12].to_vec();
        stream.push(0x00);
        stream.extend_from_slice(&good[12..]);
        let sc = at_every_split(StatusScanner::frames, &stream, &sts);
        assert_eq!(sc.skipped(), 1);
    }

    #[test]
    fn junk_that_looks_like_a_frame_start_costs_one_status_at_most() {
        // `07 00 00 00` is indistinguishable from a status start: it swallows
        // the first real status's start; the scanner is back in step at the
        // next one because that status's other bytes hold no tag.
        let (good, sts) = statuses(3);
        let mut stream = vec![0x07, 0, 0, 0];
        stream.extend_from_slice(&good);
        let mut sc = StatusScanner::frames();
        let got = collect(&mut sc, &[&stream]);
        assert_eq!(got.len(), 3);
        assert_eq!(&got[1..], &sts[1..]);
        assert_eq!(sc.skipped(), 4, "the rest of the swallowed status");
    }

    #[test]
    fn frames_ignore_payload_kind() {
        // A random-payload UDP test: its control connection still carries
        // nothing but statuses; the random scanner with a 1500-byte block
        // would lose the next 125 of them to one stray byte.
        let (good, sts) = statuses(3);
        let mut stream = vec![0x42];
        stream.extend_from_slice(&good);
        let mut random = StatusScanner::random(1500);
        assert!(collect(&mut random, &[&stream]).is_empty());
        assert_eq!(collect(&mut StatusScanner::frames(), &[&stream]), sts);
    }
}
