//! The evidence pack: `manifest.json` lists the sha256 and size of every file of a results
//! folder (subfolders too), and `manifest.sig` an Ed25519 signature of the manifest's exact
//! bytes. Signing the manifest signs every file it lists; a verifier recomputes each digest,
//! so a file changed, removed or added after the manifest was written is named.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Error, write_atomic};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The signature's file name.
pub const SIGNATURE: &str = "manifest.sig";

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always `gauntlet.manifest/v1`.
    pub schema: String,
    /// Every file but the manifest and its signature, by path relative to the folder (`/`
    /// separated), sorted.
    pub files: Vec<Entry>,
}

/// One file of the manifest.
#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
pub struct Entry {
    /// Relative path.
    pub path: String,
    /// Lower-case hex sha256 of its bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// `manifest.sig`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Signature {
    /// Always `gauntlet.signature/v1`.
    pub schema: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// What is signed: the exact bytes of this file.
    pub signed: String,
    /// sha256 of those bytes (hex), for a reader.
    pub signed_sha256: String,
    /// The signer's raw public key (base64).
    pub public_key: String,
    /// The signature (base64).
    pub signature: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// sha256 of `bytes`, hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Every regular file under `dir` but the manifest and signature at its top, relative, sorted.
fn files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                let rel = p.strip_prefix(dir).unwrap_or(&p);
                let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                let rel = rel.join("/");
                if rel != MANIFEST && rel != SIGNATURE {
                    out.push((rel, p));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The manifest of `dir` as it is now.
pub fn manifest_of(dir: &Path) -> Result<Manifest, Error> {
    let err = |source| Error::Write { path: dir.to_path_buf(), source };
    let mut entries = Vec::new();
    for (rel, p) in files(dir).map_err(err)? {
        let bytes = fs::read(&p).map_err(|source| Error::Write { path: p.clone(), source })?;
        entries.push(Entry { path: rel, sha256: sha256(&bytes), bytes: bytes.len() as u64 });
    }
    Ok(Manifest { schema: "gauntlet.manifest/v1".into(), files: entries })
}

/// Writes `dir/manifest.json` (last, after every other file).
pub fn write_manifest(dir: &Path) -> Result<PathBuf, Error> {
    let m = manifest_of(dir)?;
    let text = serde_json::to_string_pretty(&m).unwrap_or_default() + "\n";
    let dest = dir.join(MANIFEST);
    write_atomic(&dest, text.as_bytes())?;
    Ok(dest)
}

/// How the files of a folder differ from its manifest: (changed, missing, not listed).
pub fn differences(recorded: &Manifest, now: &Manifest) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut changed, mut missing, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    for e in &recorded.files {
        match now.files.iter().find(|n| n.path == e.path) {
            None => missing.push(e.path.clone()),
            Some(n) if n.sha256 != e.sha256 || n.bytes != e.bytes => changed.push(e.path.clone()),
            Some(_) => {}
        }
    }
    for n in &now.files {
        if !recorded.files.iter().any(|e| e.path == n.path) {
            extra.push(n.path.clone());
        }
    }
    (changed, missing, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_what_changed_went_missing_or_appeared() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.json"), "a").unwrap();
        fs::create_dir(d.path().join("h2")).unwrap();
        fs::write(d.path().join("h2/b.json"), "b").unwrap();
        write_manifest(d.path()).unwrap();
        let recorded: Manifest = serde_json::from_slice(&fs::read(d.path().join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(recorded.files.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["a.json", "h2/b.json"]);
        assert_eq!(recorded.files[0].sha256, sha256(b"a"));
        fs::write(d.path().join("a.json"), "A").unwrap();
        fs::remove_file(d.path().join("h2/b.json")).unwrap();
        fs::write(d.path().join("c.txt"), "c").unwrap();
        let (changed, missing, extra) = differences(&recorded, &manifest_of(d.path()).unwrap());
        assert_eq!((changed, missing, extra), (vec!["a.json".into()], vec!["h2/b.json".into()], vec!["c.txt".into()]));
    }
}
