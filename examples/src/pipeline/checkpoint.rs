//! The reader's checkpoint on disk: its position in the event log, written the way
//! a crash cannot tear it (temporary file, fsync, rename over the old one, fsync
//! the directory) and checked on the way back in (a checksum over the content).
//!
//! Faults are real I/O: an injected write failure plants a directory where the
//! temporary file goes, so creating it fails with the operating system's error;
//! an injected corruption flips one byte of the saved file, so the next recovery
//! fails its checksum.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const FILE: &str = "reader.checkpoint";
const TEMP: &str = "reader.checkpoint.tmp";
const HEADER: &str = "outcometer-pipeline checkpoint v1";

/// What a recovery found.
#[derive(Debug)]
pub enum Recovered {
    /// A valid checkpoint at this log offset.
    Restored(u64),
    /// No checkpoint yet.
    Empty,
    /// A checkpoint that could not be read or failed its checks.
    Failed(String),
}

/// FNV-1a, 64 bits: a checksum, not a defence against tampering.
fn checksum(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn encode(offset: u64) -> String {
    let body = format!("offset {offset}");
    format!("{HEADER}\n{body}\nchecksum {:016x}\n", checksum(&body))
}

fn decode(text: &str) -> Result<u64, String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err("not a checkpoint file".to_owned());
    }
    let body = lines.next().ok_or("truncated")?;
    let sum = lines
        .next()
        .and_then(|l| l.strip_prefix("checksum "))
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or("no checksum")?;
    if sum != checksum(body) {
        return Err(format!("checksum mismatch over {body:?}"));
    }
    body.strip_prefix("offset ")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| format!("bad offset line {body:?}"))
}

/// A checkpoint file in a directory of its own.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(CheckpointStore { dir })
    }

    /// Saves `offset` atomically; with `fail`, a directory is planted where the
    /// temporary file goes first, so the save fails as a full or broken disk would.
    pub fn save(&self, offset: u64, fail: bool) -> io::Result<()> {
        let temp = self.dir.join(TEMP);
        if fail {
            fs::create_dir(&temp)?;
        }
        let saved = self.write_then_rename(&temp, offset);
        if fail {
            let _ = fs::remove_dir(&temp);
        }
        saved
    }

    fn write_then_rename(&self, temp: &Path, offset: u64) -> io::Result<()> {
        let mut file = File::create(temp)?;
        file.write_all(encode(offset).as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(temp, self.dir.join(FILE))?;
        // The rename is durable once the directory entry is.
        File::open(&self.dir)?.sync_all()
    }

    /// Reads the last checkpoint back.
    pub fn recover(&self) -> Recovered {
        let mut text = String::new();
        match File::open(self.dir.join(FILE)).and_then(|mut f| f.read_to_string(&mut text)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Recovered::Empty,
            Err(e) => Recovered::Failed(e.to_string()),
            Ok(_) => match decode(&text) {
                Ok(offset) => Recovered::Restored(offset),
                Err(why) => Recovered::Failed(why),
            },
        }
    }

    /// Flips one bit of the offset in the saved file, in place (bit rot, a bad
    /// sector): the next recovery fails its checksum.
    pub fn corrupt(&self) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(FILE))?;
        let at = (HEADER.len() + "\noffset ".len()) as u64;
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut byte)?;
        file.seek(SeekFrom::Start(at))?;
        file.write_all(&[byte[0] ^ 1])?;
        file.sync_all()
    }
}

/// A scratch directory removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A fresh directory under the system's temporary directory.
    pub fn new(what: &str) -> io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "outcometer-{what}-{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        fs::create_dir_all(&dir)?;
        Ok(ScratchDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_recovers_fails_and_detects_corruption() {
        let scratch = ScratchDir::new("checkpoint-test").unwrap();
        let store = CheckpointStore::open(scratch.path().join("cp")).unwrap();
        assert!(matches!(store.recover(), Recovered::Empty));
        store.save(1234, false).unwrap();
        assert!(matches!(store.recover(), Recovered::Restored(1234)));
        let err = store.save(99, true).expect_err("injected");
        assert!(!err.to_string().is_empty());
        assert!(
            matches!(store.recover(), Recovered::Restored(1234)),
            "a failed save leaves the last one whole"
        );
        assert!(
            !scratch.path().join("cp").join(TEMP).exists(),
            "the obstacle is gone"
        );
        store.save(77, false).unwrap();
        assert!(matches!(store.recover(), Recovered::Restored(77)));
        store.corrupt().unwrap();
        match store.recover() {
            Recovered::Failed(why) => assert!(why.contains("checksum"), "{why}"),
            other => panic!("{other:?}"),
        }
        store.save(78, false).unwrap();
        assert!(matches!(store.recover(), Recovered::Restored(78)));
        let path = scratch.path().to_owned();
        drop(scratch);
        assert!(!path.exists());
    }

    #[test]
    fn decoding_checks_every_line() {
        assert_eq!(decode(&encode(u64::MAX)), Ok(u64::MAX));
        assert!(decode("").is_err());
        assert!(decode(HEADER).is_err());
        assert!(decode(&encode(5).replace("offset 5", "offset 6")).is_err());
    }
}
