//! The 12-byte status message both sides send once a second, and the
//! scanner that finds it inside a TCP data stream.

use super::{ProtoError, take};

pub const TAG: u8 = 0x07;
const CPU_FLAG: u8 = 0x80;

/// One status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Sender's CPU busy percentage; `None` when the sender gave none
    /// (RouterOS 6 sends 0x00 in that byte).
    pub cpu: Option<u8>,
    /// Starts at 1, +1 per message; not relied upon (layouts differ).
    pub seq: u32,
    /// Bytes the sender received in the last interval.
    pub bytes: u32,
}

impl Status {
    pub const LEN: usize = 12;

    /// Decodes leniently: only the tag is checked, because older
    /// implementations put a big-endian sequence number in bytes 1-4.
    pub fn parse(buf: &[u8]) -> Result<Status, ProtoError> {
        let b: [u8; 12] = take(buf)?;
        if b[0] != TAG {
            return Err(ProtoError::BadStatus);
        }
        let cpu = (b[1] & CPU_FLAG != 0).then_some((b[1] & !CPU_FLAG).min(100));
        Ok(Status {
            cpu,
            seq: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            bytes: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }

    pub fn emit(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0] = TAG;
        b[1] = self.cpu.map_or(0, |c| CPU_FLAG | c.min(100));
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.bytes.to_le_bytes());
        b
    }
}

/// Whether a byte may follow the tag: the CPU flag, or RouterOS 6's 0x00.
fn plausible_second_byte(b: u8) -> bool {
    b == 0 || b & CPU_FLAG != 0
}

/// Finds status messages in a TCP data stream, across reads.
///
/// Zero payload: any tag byte followed by a plausible second byte starts a
/// status (data bytes are all zero), found with memchr. Random payload: only
/// positions at the sender's write boundaries (every `chunk` data bytes) are
/// trusted, since random data contains the tag byte everywhere.
#[derive(Debug, Clone)]
pub struct StatusScanner {
    /// `Some(chunk)` for random payload written in `chunk`-byte blocks.
    chunk: Option<u32>,
    /// Data bytes left in the current block (random payload only).
    in_chunk: u32,
    /// A status message split across reads: its first `partial_len` bytes.
    partial: [u8; Status::LEN],
    partial_len: usize,
}

impl StatusScanner {
    pub fn zeros() -> StatusScanner {
        StatusScanner { chunk: None, in_chunk: 0, partial: [0; 12], partial_len: 0 }
    }

    pub fn random(chunk: u16) -> StatusScanner {
        StatusScanner { chunk: Some(u32::from(chunk.max(1))), ..StatusScanner::zeros() }
    }

    /// Scans the next bytes of the stream, calling `found` for each status.
    pub fn feed(&mut self, mut data: &[u8], mut found: impl FnMut(Status)) {
        while !data.is_empty() {
            if self.partial_len > 0 {
                if self.partial_len == 1 && !plausible_second_byte(data[0]) {
                    // The tag was not a status: a stray byte in zeros (rescan
                    // from here), or the first byte of a random block.
                    self.partial_len = 0;
                    if let Some(chunk) = self.chunk {
                        self.in_chunk = chunk - 1;
                    }
                    continue;
                }
                let n = (Status::LEN - self.partial_len).min(data.len());
                self.partial[self.partial_len..self.partial_len + n].copy_from_slice(&data[..n]);
                self.partial_len += n;
                data = &data[n..];
                if self.partial_len == Status::LEN {
                    self.partial_len = 0;
                    if let Ok(s) = Status::parse(&self.partial) {
                        found(s);
                    }
                }
                continue;
            }
            match self.chunk {
                None => data = self.scan_zeros(data, &mut found),
                Some(chunk) => {
                    if self.in_chunk == 0 {
                        if data[0] == TAG && data.get(1).is_none_or(|&b| plausible_second_byte(b)) {
                            data = self.take_status(data, &mut found);
                        } else {
                            self.in_chunk = chunk;
                        }
                    } else {
                        let n = (self.in_chunk as usize).min(data.len());
                        self.in_chunk -= n as u32;
                        data = &data[n..];
                    }
                }
            }
        }
    }

    /// Finds the next tag in zero payload; returns the unscanned rest.
    fn scan_zeros<'a>(&mut self, data: &'a [u8], found: &mut impl FnMut(Status)) -> &'a [u8] {
        let Some(i) = memchr::memchr(TAG, data) else {
            return &[];
        };
        let rest = &data[i..];
        match rest.get(1) {
            Some(&b) if !plausible_second_byte(b) => &rest[1..],
            _ => self.take_status(rest, found),
        }
    }

    /// `data` starts with a status: reports it or keeps the split start.
    fn take_status<'a>(&mut self, data: &'a [u8], found: &mut impl FnMut(Status)) -> &'a [u8] {
        if data.len() >= Status::LEN {
            if let Ok(s) = Status::parse(data) {
                found(s);
            }
            &data[Status::LEN..]
        } else {
            self.partial[..data.len()].copy_from_slice(data);
            self.partial_len = data.len();
            &[]
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

    #[test]
    fn parses_captured_routeros6_status() {
        let raw = [0x07, 0, 0, 0, 1, 0, 0, 0, 0x36, 0x6e, 0x03, 0];
        let s = Status::parse(&raw).unwrap();
        assert_eq!(s, Status { cpu: None, seq: 1, bytes: 224_822 });
        assert_eq!(s.emit(), raw);
    }

    #[test]
    fn cpu_byte_uses_flag_and_zero_percent_is_zero() {
        let s = Status { cpu: Some(0), seq: 2, bytes: 0 };
        assert_eq!(s.emit()[1], 0x80);
        assert_eq!(Status::parse(&s.emit()).unwrap().cpu, Some(0));
        let mut raw = s.emit();
        raw[1] = 0xd9;
        assert_eq!(Status::parse(&raw).unwrap().cpu, Some(89));
        raw[1] = 0xff;
        assert_eq!(Status::parse(&raw).unwrap().cpu, Some(100));
    }

    #[test]
    fn rejects_wrong_tag_and_short_input() {
        assert_eq!(Status::parse(&[0u8; 12]), Err(ProtoError::BadStatus));
        assert!(Status::parse(&[7u8; 11]).is_err());
    }

    #[test]
    fn finds_status_in_zero_stream_split_at_every_position() {
        let st = Status { cpu: Some(42), seq: 7, bytes: 0x0780_0707 };
        let mut stream = vec![0u8; 100];
        stream.extend_from_slice(&st.emit());
        stream.extend_from_slice(&[0u8; 50]);
        for split in 0..stream.len() {
            let mut sc = StatusScanner::zeros();
            let got = collect(&mut sc, &[&stream[..split], &stream[split..]]);
            assert_eq!(got, vec![st], "split at {split}");
        }
        // One byte per read.
        let mut sc = StatusScanner::zeros();
        let reads: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(collect(&mut sc, &reads), vec![st]);
    }

    #[test]
    fn stray_tag_in_zero_stream_is_skipped() {
        let st = Status { cpu: Some(1), seq: 1, bytes: 5 };
        let mut stream = vec![0u8, 0x07, 0x01, 0, 0];
        stream.extend_from_slice(&st.emit());
        let mut sc = StatusScanner::zeros();
        assert_eq!(collect(&mut sc, &[&stream[..2], &stream[2..]]), vec![st]);
    }

    #[test]
    fn random_block_starting_with_the_tag_is_data_however_split() {
        // A block of 4 starting 07 01 (not a status), then 12 zero bytes.
        let mut stream = vec![0x07, 0x01, 0, 0];
        stream.extend_from_slice(&[0u8; 12]);
        for split in 0..stream.len() {
            let mut sc = StatusScanner::random(4);
            assert!(collect(&mut sc, &[&stream[..split], &stream[split..]]).is_empty(), "split at {split}");
        }
    }

    #[test]
    fn random_stream_trusts_only_block_boundaries() {
        let chunk = 16u16;
        let st = Status { cpu: Some(3), seq: 9, bytes: 1234 };
        // Random-looking blocks full of fake tags between real statuses.
        let block: Vec<u8> = (0..16u8).map(|i| if i % 2 == 0 { 0x07 } else { 0x85 }).collect();
        let mut block = block;
        block[0] = 0x55; // the sender never starts a block with the tag
        let mut stream = Vec::new();
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&st.emit());
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&block);
        stream.extend_from_slice(&st.emit());
        for split in 0..stream.len() {
            let mut sc = StatusScanner::random(chunk);
            let got = collect(&mut sc, &[&stream[..split], &stream[split..]]);
            assert_eq!(got, vec![st, st], "split at {split}");
        }
    }
}
