//! Capture files, pcap or pcapng, read as a stream of link-layer frames (`pcap-parser`, no
//! libpcap). Each frame comes with its timestamp (ns since the epoch), its link type and the
//! byte offset of its record, so an error names where the file went wrong.

use std::io::Read;
use std::path::Path;

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Block, PcapBlockOwned, PcapError};

use super::Error;

/// Read buffer; a record larger than this (a jumbo frame is 9 KiB, pcapng blocks with
/// options slightly more) grows it up to [`MAX_BUFFER`].
const BUFFER: usize = 1 << 16;
/// The largest record accepted (pcapng blocks are length-prefixed with 32 bits: a corrupt
/// length must not make the reader allocate gigabytes).
const MAX_BUFFER: usize = 1 << 24;

/// The container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// libpcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

/// One frame's facts; its bytes are in the buffer handed to [`Frames::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Link type (tcpdump.org numbering).
    pub linktype: i32,
    /// Bytes on the wire (more than captured when the snap length cut the frame).
    pub orig_len: u32,
    /// Byte offset of the record in the file.
    pub offset: u64,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset_s: i64,
}

/// A capture being read.
pub struct Frames {
    reader: Box<dyn PcapReaderIterator + Send>,
    format: Format,
    /// Bytes consumed before the current record.
    consumed: u64,
    /// pcap: the file's link type and precision; pcapng: the current section's interfaces.
    interfaces: Vec<Interface>,
    capacity: usize,
    /// pcapng Decryption Secrets Blocks seen (TLS key logs embedded in the capture).
    pub secrets: u64,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames").field("format", &self.format).field("consumed", &self.consumed).finish()
    }
}

impl Frames {
    /// Opens `path` (pcap or pcapng, by its magic).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = crate::input::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(file, path)
    }

    /// Reads a capture from `r` (`path` names it in errors).
    pub fn from_reader<R: Read + Send + 'static>(mut r: R, path: &Path) -> Result<Self, Error> {
        // The reader parses the header from its first read: hand it the file's first bytes
        // whole (up to the buffer), not a partial read.
        let mut head = Vec::with_capacity(BUFFER);
        (&mut r).take(BUFFER as u64).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
        let got = head.len().min(4);
        let mut magic = [0u8; 4];
        magic[..got].copy_from_slice(&head[..got]);
        let format = match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => Format::Pcapng,
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d] => Format::Pcap,
            _ if got < 4 => return Err(Error::at(path, 0, "the file is empty or shorter than a capture header")),
            _ => {
                return Err(Error::at(
                    path,
                    0,
                    format!(
                        "not a pcap or pcapng capture (starts with {:02x} {:02x} {:02x} {:02x}); \
                         record one with `tcpdump -w FILE` or convert with `editcap -F pcapng`",
                        magic[0], magic[1], magic[2], magic[3]
                    ),
                ));
            }
        };
        let chained = std::io::Cursor::new(head).chain(r);
        let reader = pcap_parser::create_reader(BUFFER, chained).map_err(|e| match e {
            PcapError::Eof | PcapError::Incomplete(_) | PcapError::UnexpectedEof => {
                Error::at(path, 0, "the capture header is cut short")
            }
            e => Error::at(path, 0, format!("the capture header is not valid ({e:?})")),
        })?;
        Ok(Frames { reader, format, consumed: 0, interfaces: Vec::new(), capacity: BUFFER, secrets: 0 })
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The next frame, its bytes copied into `buf`; `None` at the end of the file.
    pub fn next(&mut self, buf: &mut Vec<u8>, path: &Path) -> Result<Option<Frame>, Error> {
        let truncated = |at| Error::at(path, at, "the capture ends inside a record (a truncated file)");
        loop {
            let at = self.consumed;
            if self.reader.data().is_empty() {
                if self.reader.reader_exhausted() {
                    return Ok(None);
                }
                self.reader.refill().map_err(|_| Error::at(path, at, "the file could not be read"))?;
                continue;
            }
            let Frames { reader, interfaces, secrets, .. } = self;
            match reader.next() {
                Ok((len, block)) => {
                    let frame = frame(block, interfaces, secrets, buf, at, path)?;
                    self.reader.consume(len);
                    self.consumed += len as u64;
                    if let Some(f) = frame {
                        return Ok(Some(f));
                    }
                }
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        return Err(truncated(at));
                    }
                    self.reader.refill().map_err(|_| Error::at(path, at, "the file could not be read"))?;
                }
                Err(PcapError::BufferTooSmall) => {
                    // A record larger than the buffer: grow it, within a bound.
                    if self.capacity >= MAX_BUFFER {
                        return Err(Error::at(path, at, "a record is larger than 16 MiB: the file is corrupt"));
                    }
                    self.capacity *= 4;
                    if !self.reader.grow(self.capacity) {
                        return Err(Error::at(path, at, "a record does not fit in memory"));
                    }
                    self.reader.refill().map_err(|_| Error::at(path, at, "the file could not be read"))?;
                }
                Err(PcapError::UnexpectedEof) => return Err(truncated(at)),
                Err(PcapError::ReadError) => return Err(Error::at(path, at, "the file could not be read")),
                Err(e) => return Err(Error::at(path, at, format!("a record is not valid ({})", describe(&e)))),
            }
        }
    }
}

/// A frame from a block, or `None` for blocks that carry none (headers, statistics).
fn frame(
    block: PcapBlockOwned<'_>,
    interfaces: &mut Vec<Interface>,
    secrets: &mut u64,
    buf: &mut Vec<u8>,
    at: u64,
    path: &Path,
) -> Result<Option<Frame>, Error> {
    let mut data = |d: &[u8]| {
        buf.clear();
        buf.extend_from_slice(d);
    };
    match block {
        PcapBlockOwned::LegacyHeader(h) => {
            let resolution = if h.is_nanosecond_precision() { 1_000_000_000 } else { 1_000_000 };
            *interfaces = vec![Interface { linktype: h.network.0, resolution, offset_s: 0 }];
            Ok(None)
        }
        PcapBlockOwned::Legacy(b) => {
            let Some(i) = interfaces.first() else {
                return Err(Error::at(path, at, "a packet comes before the capture header"));
            };
            if u64::from(b.ts_usec) >= i.resolution {
                return Err(Error::at(path, at, "a packet's timestamp fraction is out of range: the file is corrupt"));
            }
            data(b.data);
            let ns = u64::from(b.ts_sec) * 1_000_000_000 + u64::from(b.ts_usec) * (1_000_000_000 / i.resolution);
            Ok(Some(Frame { ts_ns: ns, linktype: i.linktype, orig_len: b.origlen, offset: at }))
        }
        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
            interfaces.clear();
            Ok(None)
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            let Some(resolution) = idb.ts_resolution() else {
                return Err(Error::at(path, at, "an interface's timestamp resolution is not valid"));
            };
            interfaces.push(Interface {
                linktype: idb.linktype.0,
                resolution: resolution.max(1),
                offset_s: idb.ts_offset(),
            });
            Ok(None)
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            let Some(i) = interfaces.get(epb.if_id as usize).copied() else {
                return Err(Error::at(
                    path,
                    at,
                    format!("a packet names interface {} that its section does not describe", epb.if_id),
                ));
            };
            let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            // Saturating: a corrupt timestamp or offset must not overflow (it sorts last).
            let secs = i64::try_from(ts / i.resolution).unwrap_or(i64::MAX).saturating_add(i.offset_s);
            let frac = ts % i.resolution;
            let ns = u64::try_from(secs)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add((u128::from(frac) * 1_000_000_000 / u128::from(i.resolution)) as u64);
            data(epb.data);
            Ok(Some(Frame { ts_ns: ns, linktype: i.linktype, orig_len: epb.origlen, offset: at }))
        }
        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
            let Some(i) = interfaces.first().copied() else {
                return Err(Error::at(path, at, "a packet comes before any interface description"));
            };
            data(spb.data);
            // A simple packet has no timestamp: it is given none (time 0 sorts it first).
            Ok(Some(Frame { ts_ns: 0, linktype: i.linktype, orig_len: spb.origlen, offset: at }))
        }
        PcapBlockOwned::NG(Block::DecryptionSecrets(_)) => {
            *secrets += 1;
            Ok(None)
        }
        PcapBlockOwned::NG(_) => Ok(None),
    }
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::HeaderNotRecognized => "header not recognised".into(),
        PcapError::NomError(_, k) | PcapError::OwnedNomError(_, k) => format!("{k:?}"),
        PcapError::BufferTooSmall => "record larger than the buffer".into(),
        _ => "unreadable".into(),
    }
}
