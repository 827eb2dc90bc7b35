//! HPACK decoding (RFC 7541) of response header blocks for the HTTP/2 client: the static
//! table, a dynamic table of the size we announce (4,096 octets, the default), and the
//! Huffman code, decoded a byte at a time through a 256-entry table for the short codes
//! (every letter, digit and common punctuation mark) and by the canonical-code walk for
//! the long ones. `loona-hpack` (the capture reader's decoder) builds a hash map per
//! Huffman string — a third of an HTTP/2 generator's CPU against a server that
//! Huffman-codes its `date` and `server` — so the client decodes here; the tests check this
//! decoder against it symbol by symbol and entry by entry. A Huffman-coded value under a
//! static name whose coded bytes repeat the last ones seen there (a server's `server`,
//! `date`, `content-type` in every answer) is copied from that decoding, not decoded again.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// The dynamic table size we allow (never announced otherwise: SETTINGS_HEADER_TABLE_SIZE
/// keeps its default).
pub(crate) const TABLE_SIZE: usize = 4096;
/// A decoded header value longer than this is refused (a header block is at most 256 KiB).
const MAX_STRING: usize = 256 * 1024;

/// RFC 7541 Appendix A.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541 Appendix B, the code length of each symbol (0–255, then EOS). The code is
/// canonical — codes are assigned in order of (length, symbol) — so the lengths are all of
/// it (a test checks the derived codes against `loona-hpack`'s table by decoding).
#[rustfmt::skip]
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
    6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6,
    7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23,
    23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22,
    22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
    23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27,
    27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25,
    24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The decoding tables derived from [`LENGTHS`].
struct Huffman {
    /// `short[b]`: for the next 8 bits `b`, `(symbol, length)` of a code of at most 8 bits
    /// they start with (length 0: the code is longer).
    short: [(u8, u8); 256],
    /// Per length 1..=30: the first canonical code of that length, how many there are, and
    /// where their symbols start in `symbols`.
    first: [u32; 31],
    count: [u32; 31],
    offset: [usize; 31],
    /// Symbols in canonical order.
    symbols: Vec<u16>,
    /// Each symbol's code (for the tests' encoder).
    #[cfg(test)]
    codes: [u32; 257],
}

fn huffman() -> &'static Huffman {
    static H: OnceLock<Huffman> = OnceLock::new();
    H.get_or_init(|| {
        let mut symbols: Vec<u16> = (0..257).collect();
        symbols.sort_by_key(|&s| (LENGTHS[s as usize], s));
        let (mut first, mut count, mut offset) = ([0u32; 31], [0u32; 31], [0usize; 31]);
        let mut codes = [0u32; 257];
        let (mut code, mut len) = (0u32, LENGTHS[symbols[0] as usize]);
        for (i, &s) in symbols.iter().enumerate() {
            let l = LENGTHS[s as usize];
            if i > 0 {
                code = (code + 1) << (l - len);
                len = l;
            }
            if count[l as usize] == 0 {
                first[l as usize] = code;
                offset[l as usize] = i;
            }
            count[l as usize] += 1;
            codes[s as usize] = code;
        }
        let mut short = [(0u8, 0u8); 256];
        for s in 0..256usize {
            let l = LENGTHS[s];
            if l <= 8 {
                let base = (codes[s] << (8 - l)) as usize;
                for e in short.iter_mut().skip(base).take(1 << (8 - l)) {
                    *e = (s as u8, l);
                }
            }
        }
        Huffman {
            short,
            first,
            count,
            offset,
            symbols,
            #[cfg(test)]
            codes,
        }
    })
}

/// Appends the Huffman decoding of `input` to `out`.
fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let h = huffman();
    // Bits not yet consumed, left-aligned in `acc` (`n` of them).
    let (mut acc, mut n, mut i) = (0u64, 0u32, 0usize);
    loop {
        while n <= 56 && i < input.len() {
            acc |= u64::from(input[i]) << (56 - n);
            n += 8;
            i += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let top = (acc >> 56) as usize;
        let (sym, len) = h.short[top];
        if len != 0 && u32::from(len) <= n {
            out.push(sym);
            acc <<= len;
            n -= u32::from(len);
            continue;
        }
        // A longer code, or the padding at the end.
        let mut found = None;
        for l in 5..=30u32.min(n) {
            let v = (acc >> (64 - l)) as u32;
            let k = v.wrapping_sub(h.first[l as usize]);
            if h.count[l as usize] > 0 && v >= h.first[l as usize] && k < h.count[l as usize] {
                found = Some((h.symbols[h.offset[l as usize] + k as usize], l));
                break;
            }
        }
        match found {
            Some((256, _)) => return Err("the EOS symbol inside a Huffman string"),
            Some((s, l)) => {
                out.push(s as u8);
                acc <<= l;
                n -= l;
            }
            None => {
                // Padding: fewer than 8 bits, all ones (the start of EOS).
                if i == input.len() && n < 8 && acc >> (64 - n) == (1 << n) - 1 {
                    return Ok(());
                }
                return Err("a Huffman string with bad padding");
            }
        }
        if out.len() > MAX_STRING {
            return Err("a header value above 256 KiB");
        }
    }
}

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The last Huffman-coded value seen in a memo slot: the coded bytes and their decoding.
#[derive(Default)]
struct Memo {
    coded: Vec<u8>,
    decoded: Vec<u8>,
}

/// Memo slots, chosen by the name's static index modulo their count (`server`, `date`,
/// `content-type` and `content-length` fall in different ones).
const MEMOS: usize = 8;
/// Coded values longer than this are decoded every time (the memo stays small).
const MEMO_MAX: usize = 128;

/// The HPACK decoder of one connection's responses.
pub(crate) struct Decoder {
    /// Newest first.
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    name: Vec<u8>,
    value: Vec<u8>,
    /// Recent Huffman-coded literal values under static-table names: a server codes
    /// `server`, `date` (the same for a second) and `content-type` afresh in every answer,
    /// and the same coded bytes decode to the same value (checked when first decoded), so
    /// they are copied instead of decoded again.
    memo: [Memo; MEMOS],
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: TABLE_SIZE,
            name: Vec::new(),
            value: Vec::new(),
            memo: Default::default(),
        }
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), &'static str> {
        match index {
            0 => Err("header index 0"),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            i => self.table.get(i - 62).map(|(n, v)| (&n[..], &v[..])).ok_or("a header index past the table"),
        }
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + 32;
        self.size += size;
        self.table.push_front((name.into(), value.into()));
        // An entry larger than the table empties it, itself included.
        self.evict();
    }

    /// Decodes one whole header block, handing each field to `f` in order.
    pub(crate) fn decode(&mut self, block: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<(), &'static str> {
        let mut at = 0;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                let i = integer(block, &mut at, 7)?;
                let (n, v) = self.entry(i)?;
                f(n, v);
            } else if b & 0xe0 == 0x20 {
                let size = integer(block, &mut at, 5)?;
                if size > TABLE_SIZE {
                    return Err("a table size update above the 4,096 allowed");
                }
                self.max = size;
                self.evict();
            } else {
                let (prefix, index) = if b & 0xc0 == 0x40 { (6, true) } else { (4, false) };
                let i = integer(block, &mut at, prefix)?;
                let mut name = std::mem::take(&mut self.name);
                let mut value = std::mem::take(&mut self.value);
                name.clear();
                value.clear();
                if i == 0 {
                    string(block, &mut at, &mut name)?;
                } else {
                    name.extend_from_slice(self.entry(i)?.0);
                }
                if (1..=STATIC.len()).contains(&i) {
                    memoized(block, &mut at, &mut value, &mut self.memo[i % MEMOS])?;
                } else {
                    string(block, &mut at, &mut value)?;
                }
                f(&name, &value);
                if index {
                    self.insert(&name, &value);
                }
                self.name = name;
                self.value = value;
            }
        }
        Ok(())
    }
}

/// An integer with an `n`-bit prefix at `block[*at]`.
fn integer(block: &[u8], at: &mut usize, n: u32) -> Result<usize, &'static str> {
    let max = (1usize << n) - 1;
    let mut v = usize::from(block[*at]) & max;
    *at += 1;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let b = *block.get(*at).ok_or("a header block cut inside an integer")?;
        *at += 1;
        if shift > 28 {
            return Err("an integer too large");
        }
        v += (usize::from(b) & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// A string literal at `block[*at]`: whether it is Huffman-coded, and its bytes.
fn literal<'b>(block: &'b [u8], at: &mut usize) -> Result<(bool, &'b [u8]), &'static str> {
    let b = *block.get(*at).ok_or("a header block cut before a string")?;
    let len = integer(block, at, 7)?;
    let bytes = block.get(*at..*at + len).ok_or("a header block cut inside a string")?;
    *at += len;
    Ok((b & 0x80 != 0, bytes))
}

/// Appends a literal's value to `out`.
fn decoded(huffman: bool, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    if huffman {
        huffman_decode(bytes, out)
    } else {
        out.extend_from_slice(bytes);
        Ok(())
    }
}

/// A string literal at `block[*at]`, appended to `out`.
fn string(block: &[u8], at: &mut usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
    let (huffman, bytes) = literal(block, at)?;
    decoded(huffman, bytes, out)
}

/// [`string`] through `memo` when the literal is Huffman-coded and short: the same coded
/// bytes as last time are the same value.
fn memoized(block: &[u8], at: &mut usize, out: &mut Vec<u8>, memo: &mut Memo) -> Result<(), &'static str> {
    let (huffman, coded) = literal(block, at)?;
    if !huffman || coded.len() > MEMO_MAX {
        return decoded(huffman, coded, out);
    }
    if coded != memo.coded.as_slice() {
        // Forgotten first, so a value that fails to decode is never remembered.
        memo.coded.clear();
        memo.decoded.clear();
        huffman_decode(coded, &mut memo.decoded)?;
        memo.coded.extend_from_slice(coded);
    }
    out.extend_from_slice(&memo.decoded);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &[u8]) -> Vec<u8> {
        let h = huffman();
        let (mut acc, mut n, mut out) = (0u64, 0u32, Vec::new());
        for &c in s {
            let l = u32::from(LENGTHS[c as usize]);
            acc = (acc << l) | u64::from(h.codes[c as usize]);
            n += l;
            while n >= 8 {
                out.push((acc >> (n - 8)) as u8);
                n -= 8;
            }
        }
        if n > 0 {
            out.push(((acc << (8 - n)) as u8) | ((1u8 << (8 - n)) - 1));
        }
        out
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn loona(block: &[u8]) -> Fields {
        let mut got = Vec::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(block, |n, v| got.push((n.to_vec(), v.to_vec())))
            .expect("loona decodes");
        got
    }

    fn ours(d: &mut Decoder, block: &[u8]) -> Result<Fields, &'static str> {
        let mut got = Vec::new();
        d.decode(block, |n, v| got.push((n.to_vec(), v.to_vec())))?;
        Ok(got)
    }

    /// A literal field "without indexing" (new name), the value Huffman-coded.
    fn huffman_field(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = vec![0x00, name.len() as u8];
        b.extend_from_slice(name);
        let v = encode(value);
        let mut len = Vec::new();
        super::super::h2::integer(&mut len, 0x80, 7, v.len());
        b.extend_from_slice(&len);
        b.extend_from_slice(&v);
        b
    }

    #[test]
    fn every_symbol_decodes_as_the_reference_decoder_decodes_it() {
        // Each byte alone, then all of them in one string: the derived canonical codes are
        // the RFC's (loona-hpack carries the appendix's table).
        for c in 0..=255u8 {
            let block = huffman_field(b"x", &[c, b'a', c]);
            assert_eq!(ours(&mut Decoder::new(), &block).unwrap(), loona(&block), "symbol {c}");
        }
        let all: Vec<u8> = (0..=255u8).rev().collect();
        let block = huffman_field(b"x", &all);
        assert_eq!(ours(&mut Decoder::new(), &block).unwrap()[0].1, all);
        assert_eq!(loona(&block)[0].1, all);
    }

    #[test]
    fn the_static_table_is_the_reference_decoders() {
        for i in 1..=61u8 {
            let block = [0x80 | i];
            assert_eq!(ours(&mut Decoder::new(), &block).unwrap(), loona(&block), "index {i}");
        }
    }

    #[test]
    fn rfc_7541_c4_and_c6_decode_with_their_table_states() {
        // C.4: requests with Huffman coding, one connection.
        let hex = |s: &str| -> Vec<u8> {
            let s: String = s.split_whitespace().collect();
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        };
        let mut d = Decoder::new();
        let first = ours(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).unwrap();
        assert_eq!(first[3], (b":authority".to_vec(), b"www.example.com".to_vec()));
        let second = ours(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        assert_eq!(second[3], (b":authority".to_vec(), b"www.example.com".to_vec()));
        assert_eq!(second[4], (b"cache-control".to_vec(), b"no-cache".to_vec()));
        let third = ours(&mut d, &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")).unwrap();
        assert_eq!(third[4], (b"custom-key".to_vec(), b"custom-value".to_vec()));
        assert_eq!(d.size, 164);
        // C.6: responses with Huffman coding and a 256-octet table (evictions).
        let mut d = Decoder::new();
        d.max = 256;
        let r1 = ours(
            &mut d,
            &hex(
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad \
                  1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            ),
        )
        .unwrap();
        assert_eq!(r1[0], (b":status".to_vec(), b"302".to_vec()));
        assert_eq!(r1[3], (b"location".to_vec(), b"https://www.example.com".to_vec()));
        assert_eq!(d.size, 222);
        let r2 = ours(&mut d, &hex("4883 640e ffc1 c0bf")).unwrap();
        assert_eq!(r2[0], (b":status".to_vec(), b"307".to_vec()));
        assert_eq!(d.size, 222);
    }

    /// A literal field "without indexing" under static name `index`, the value Huffman-coded.
    fn under_static(index: usize, value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        super::super::h2::integer(&mut b, 0x00, 4, index);
        let v = encode(value);
        super::super::h2::integer(&mut b, 0x80, 7, v.len());
        b.extend_from_slice(&v);
        b
    }

    #[test]
    fn a_repeated_coded_value_decodes_as_the_first_time() {
        let mut d = Decoder::new();
        let date = |v: &[u8]| under_static(33, v);
        let a = b"Mon, 07 Dec 2026 13:45:34 GMT";
        let b = b"Mon, 07 Dec 2026 13:45:35 GMT";
        for (block, want) in [(date(a), &a[..]), (date(a), a), (date(b), b), (date(a), a)] {
            assert_eq!(ours(&mut d, &block).unwrap(), vec![(b"date".to_vec(), want.to_vec())]);
        }
        // The same coded bytes under another name in the same memo slot (41 % 8 == 33 % 8).
        assert_eq!(ours(&mut d, &under_static(41, a)).unwrap(), vec![(b"if-none-match".to_vec(), a.to_vec())]);
        // A value that does not decode is an error every time, and is not remembered.
        let mut bad = date(a);
        let last = bad.len() - 1;
        bad[last] = 0x00; // padding that is not all ones
        for _ in 0..2 {
            assert!(d.decode(&bad, |_, _| {}).is_err());
        }
        assert_eq!(ours(&mut d, &date(b)).unwrap()[0].1, b.to_vec());
        // Every block also decodes as the reference decoder decodes it.
        let server = under_static(54, b"nginx/1.22.1");
        assert_eq!(ours(&mut d, &server).unwrap(), loona(&server));
        assert_eq!(ours(&mut d, &server).unwrap(), loona(&server));
    }

    #[test]
    fn broken_blocks_are_errors_not_panics() {
        for bad in
            [&[0x80u8][..], &[0xff], &[0x00, 0x85, 0xff], &[0x00, 0x01], &[0x40, 0x81, 0x00, 0x81], &[0x3f, 0xff, 0xff]]
        {
            assert!(Decoder::new().decode(bad, |_, _| {}).is_err(), "{bad:?}");
        }
        // EOS inside a string, and padding of 8 bits or more.
        let mut eos = vec![0x00, 0x01, b'x', 0x84];
        eos.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(Decoder::new().decode(&eos, |_, _| {}).is_err());
        assert!(Decoder::new().decode(&[0x00, 0x01, b'x', 0x82, 0x1f, 0xff], |_, _| {}).is_err());
    }
}
