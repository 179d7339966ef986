//! The NDJSON file sink: appends each batch with one vectored write of the queued events (no
//! copy into a buffer of its own; IOV_MAX events per call), fsyncs by policy, rotates by size
//! keeping a bounded number of old files, and never leaves a partial line a reader would take
//! as an event: a failed write is cut back to the last whole line, and a file that ends without
//! a newline (a crash mid-write) has that unterminated tail cut when it is opened.
//!
//! File I/O blocks, so every batch runs on tokio's blocking pool, never on a runtime thread.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use metrics::Counter;

use super::retry::SendError;
use super::sent::Sent;
use super::transport::Transport;
use crate::config::{FileSettings, FsyncPolicy};

pub struct FileSink {
    /// `None` only while a batch is being written on the blocking pool.
    writer: Option<Writer>,
}

struct Writer {
    sink_id: String,
    settings: FileSettings,
    file: Option<File>,
    /// Length of the current file: where the next batch starts, and where a failed write is
    /// cut back to.
    len: u64,
    last_sync: Instant,
    unsynced: bool,
    torn_tail_bytes: Counter,
}

impl FileSink {
    pub fn new(sink_id: String, settings: FileSettings, torn_tail_bytes: Counter) -> FileSink {
        FileSink {
            writer: Some(Writer {
                sink_id,
                settings,
                file: None,
                len: 0,
                last_sync: Instant::now(),
                unsynced: false,
                torn_tail_bytes,
            }),
        }
    }
}

impl Transport for FileSink {
    /// Appends the whole batch: every event is written, or none counts.
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        let Some(mut writer) = self.writer.take() else {
            return Err(SendError::retryable("file writer unavailable"));
        };
        let batch_len = batch.len();
        let batch = batch.to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            let r = writer.write_batch(&batch);
            (writer, r)
        })
        .await;
        match joined {
            Ok((writer, r)) => {
                self.writer = Some(writer);
                r.map(|()| Sent::Delivered(batch_len))
                    .map_err(|e| SendError::retryable(e.to_string()))
            }
            Err(e) => Err(SendError::retryable(format!(
                "file writer task failed: {e}"
            ))),
        }
    }

    /// Syncs what is unsynced (whatever the policy, except `never`) and closes the file.
    async fn close(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        }
    }
}

impl Writer {
    fn open(&mut self) -> std::io::Result<()> {
        let path = &self.settings.path;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let meta = file.metadata()?;
        let mut len = meta.len();
        if meta.is_file() && len > 0 {
            let cut = cut_unterminated_tail(&mut file, len)?;
            if cut > 0 {
                tracing::warn!(sink = %self.sink_id, path = %path.display(), bytes = cut, "cut an unterminated last line left by an interrupted write");
                self.torn_tail_bytes.increment(cut);
                len -= cut;
            }
        }
        self.file = Some(file);
        self.len = len;
        Ok(())
    }

    fn write_batch(&mut self, batch: &[Bytes]) -> std::io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        let bytes: u64 = batch.iter().map(|item| item.len() as u64).sum();
        if self.len > 0 && self.len + bytes > self.settings.rotate_bytes {
            self.rotate()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("file not open"));
        };
        if let Err(e) = write_all_vectored(file, batch) {
            // Cut back to the last whole line so no half line stays behind; reopen next time.
            let _ = file.set_len(self.len);
            self.file = None;
            return Err(e);
        }
        self.len += bytes;
        self.unsynced = true;
        let due = match self.settings.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval => self.last_sync.elapsed() >= self.settings.fsync_interval,
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(file) = self.file.as_ref() {
            file.sync_data()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// path -> path.1 -> path.2 ... keeping `keep_files` rotated files.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.settings.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        self.file = None;
        let path = &self.settings.path;
        let keep = self.settings.keep_files;
        if keep == 0 {
            std::fs::remove_file(path)?;
        } else {
            let _ = std::fs::remove_file(rotated(path, keep));
            for n in (1..keep).rev() {
                let from = rotated(path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated(path, n + 1))?;
                }
            }
            std::fs::rename(path, rotated(path, 1))?;
        }
        tracing::info!(sink = %self.sink_id, path = %path.display(), "rotated file");
        self.open()
    }

    fn close(&mut self) {
        if self.unsynced && self.settings.fsync != FsyncPolicy::Never {
            if let Err(e) = self.sync() {
                tracing::error!(sink = %self.sink_id, error = %e, "fsync at close failed");
            }
        }
        self.file = None;
    }
}

/// Writes every event of `batch` in order, in as few `writev` calls as the kernel allows
/// (std caps each at IOV_MAX slices), resuming after a short write.
fn write_all_vectored(file: &mut File, batch: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .filter(|item| !item.is_empty())
        .map(|item| IoSlice::new(item))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// If the file does not end with a newline, truncates it after the last newline (or to empty)
/// and returns how many bytes were cut.
fn cut_unterminated_tail(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut pos = len;
    let mut chunk = [0u8; 4096];
    let mut first = true;
    while pos > 0 {
        let n = chunk.len().min(pos as usize);
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk[..n])?;
        if first && chunk[n - 1] == b'\n' {
            return Ok(0);
        }
        first = false;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            let keep = pos + i as u64 + 1;
            file.set_len(keep)?;
            return Ok(len - keep);
        }
    }
    file.set_len(0)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn settings(path: PathBuf, rotate_bytes: u64, keep_files: usize) -> FileSettings {
        FileSettings {
            path,
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_secs(1),
            rotate_bytes,
            keep_files,
        }
    }

    fn lines(n: usize, tag: &str) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(format!("{{\"{tag}\":{i}}}\n")))
            .collect()
    }

    #[tokio::test]
    async fn appends_and_cuts_a_torn_tail_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, "{\"old\":1}\n{\"torn\":").unwrap();
        let mut sink = FileSink::new(
            "t".into(),
            settings(path.clone(), 1 << 20, 2),
            Counter::noop(),
        );
        sink.send(&lines(2, "new")).await.unwrap();
        sink.close().await;
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"old\":1}\n{\"new\":0}\n{\"new\":1}\n"
        );
    }

    #[tokio::test]
    async fn a_batch_of_more_events_than_one_writev_takes_is_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = FileSink::new(
            "t".into(),
            settings(path.clone(), 1 << 30, 1),
            Counter::noop(),
        );
        // More than IOV_MAX (1024 on Linux) slices, and an empty item among them.
        let mut batch = lines(2500, "e");
        batch.insert(1000, Bytes::new());
        sink.send(&batch).await.unwrap();
        sink.send(&lines(3, "next")).await.unwrap();
        sink.close().await;
        let expected: String = lines(2500, "e")
            .iter()
            .chain(lines(3, "next").iter())
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = FileSink::new("t".into(), settings(path.clone(), 30, 2), Counter::noop());
        for round in 0..5 {
            sink.send(&lines(2, &format!("r{round}"))).await.unwrap();
        }
        sink.close().await;
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(
            current.contains("r4") && !current.contains("r3"),
            "{current}"
        );
        assert!(std::fs::read_to_string(rotated(&path, 1))
            .unwrap()
            .contains("r3"));
        assert!(std::fs::read_to_string(rotated(&path, 2))
            .unwrap()
            .contains("r2"));
        assert!(!rotated(&path, 3).exists());
    }
}
