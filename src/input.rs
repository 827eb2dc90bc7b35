//! Reading the files a user names — scenarios and what they include, certificates, keys, CA
//! bundles, JWKS, gateway configs: regular files only, never more than a cap. Captures and
//! HAR files are opened here too (regular files only) and streamed by their readers.
//!
//! A path may name anything: `/dev/zero` (endless), `/dev/urandom`, a FIFO (opening it blocks
//! until a writer comes), a directory, a 2 GB file by mistake. Each is refused here with a
//! reason the caller puts after the field it came from, before a byte is buffered beyond the
//! cap. A file replaced by a FIFO between the check and the open cannot block either: the
//! open is non-blocking, and the opened file is checked again.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Cap for a scenario file and each file it includes.
pub const SCENARIO: u64 = 1 << 20;
/// Cap for a certificate, key, CA bundle or JWKS (a CA bundle of a few hundred certificates
/// is well under this).
pub const PEM: u64 = 4 << 20;

/// What a path is, when it is not a regular file.
fn kind(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

fn refused(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}, not a regular file"))
}

/// Opens `path` for reading if it is a regular file, without blocking on a FIFO.
pub fn open(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(what) = kind(std::fs::metadata(path)?.file_type()) {
        return Err(refused(what));
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path)?;
    if let Some(what) = kind(file.metadata()?.file_type()) {
        return Err(refused(what));
    }
    Ok(file)
}

/// Reads all of `path`, a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = open(path)?;
    let too_big = |n: u64| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{n} bytes is over the {} limit for this file", size(limit)),
        )
    };
    let len = file.metadata()?.len();
    if len > limit {
        return Err(too_big(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    // A file that grows while it is read (or whose size the kernel does not know, as in
    // /proc) is still cut at the cap.
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_big(out.len() as u64));
    }
    Ok(out)
}

/// Reads `path` as UTF-8 text (see [`read`]).
pub fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")))
}

/// `s` with its control characters (C0, DEL, C1) escaped as `\u{1b}`, `\n` and so on, for a
/// message that carries text from a file or a peer to a terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n}-byte"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_fifos_and_directories_and_caps_the_size() {
        let e = read(Path::new("/dev/zero"), PEM).unwrap_err();
        assert!(e.to_string().contains("a character device, not a regular file"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path(), PEM).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = read(&fifo, PEM).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        let e = read(&big, 1024).unwrap_err();
        assert!(e.to_string().contains("2048 bytes is over the 1 KiB limit"), "{e}");
        assert_eq!(read(&big, 2048).unwrap().len(), 2048);
        assert_eq!(size(SCENARIO), "1 MiB");
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(printable("plain `name` é"), "plain `name` é");
        assert_eq!(
            printable("a\u{1b}]0;owned\u{7}\u{1b}[2Jb\r\nc\0\u{9b}"),
            "a\\u{1b}]0;owned\\u{7}\\u{1b}[2Jb\\r\\nc\\u{0}\\u{9b}"
        );
    }
}
