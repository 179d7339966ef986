//! The on-disk segment log behind the disk queue: an append-only sequence of records (one
//! encoded event each) split over segment files, with a durable committed position saying how
//! far the sink has delivered. It owns the file format, crash recovery (cutting a torn tail),
//! reads verified by checksum, and deleting segments once every record in them is delivered.
//!
//! # On disk
//!
//! A directory holding:
//!
//! * `{first_seq:020}.seg`: a segment, named by the sequence number of its first record. It is
//!   records back to back, each `[u32 LE payload length][u32 LE checksum][payload]`, the
//!   checksum being the CRC-32 of the record's sequence number (u64 LE) followed by the
//!   payload. A record never spans two segments; a record larger than the segment size gets a
//!   segment of its own. Records written before the sequence number went into the checksum
//!   carry the CRC-32 of the payload alone, and are read as they were.
//! * `{first_seq:020}.spare`: a delivered segment kept to be written over by a later one (at
//!   most [`MAX_SPARES`]). An fdatasync after writes into blocks a file already has need not
//!   commit the file system's journal, as one that grows the file must: on ext4 it takes about
//!   half as long. A segment made from a spare is written from its start, and every write into
//!   it ends with an end marker, `[0u32][u32 LE CRC-32 of the next sequence number]`, which the
//!   next write overwrites: the bytes after it are the spare's earlier records, whose
//!   checksums hold other sequence numbers and so never pass for records of this segment.
//! * `committed`: 16 bytes, `b"SGC1"`, the first undelivered sequence number (u64 LE), and the
//!   CRC-32 of those 12 bytes (u32 LE). Replaced atomically (temp file, fsync, rename, fsync of
//!   the directory). Missing means 0; anything else unreadable is an error, never a guess.
//! * `committed.tmp`: a replacement being written; removed on open.
//!
//! Sequence numbers are u64, counting from 0 across segments and never reused: a segment's
//! records are numbered from its name on, and each segment starts where the previous one ends.
//!
//! # Recovery
//!
//! [`SegmentLog::open`] deletes segments whose records are all committed, scans the rest from
//! the one holding the committed position, and stops at the first record that cannot be
//! trusted: a header or payload cut short by the end of the file, a zero length (never written,
//! so a zero-filled tail is not taken for records), or, for undelivered records, a checksum that
//! does not match (an end marker for the sequence number it stands at ends a segment cleanly).
//! The segment is truncated there and every later segment is deleted, since
//! their sequence numbers would no longer follow on. A segment whose name does not follow on
//! from the previous one (or the first segment starting after the committed position) is
//! treated the same way: the log ends before it.
//!
//! Spares found at open are kept for reuse, but those beyond [`MAX_SPARES`] or larger than the
//! segment size are deleted. Recovered segments never become spares (their records may carry
//! checksums of the payload alone): they are deleted once delivered.
//!
//! # Blocking
//!
//! Everything here is synchronous `std::fs` I/O; callers run it on a blocking thread. One
//! `SegmentLog` must own a directory: two processes on one directory would corrupt it. With
//! [`SegmentLog::delete_in_background`], delivered segments are deleted by a thread of their
//! own: ext4 takes tens of milliseconds to free a 64 MiB file, which appends need not wait for.
//! Spares are renamed, which is quick, and so kept on the appending thread.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};

/// Bytes before each payload: length and checksum.
const HEADER: usize = 8;
const HEADER_U64: u64 = HEADER as u64;

/// Largest payload: what the u32 length field can say.
pub const MAX_RECORD_BYTES: usize = u32::MAX as usize;

const COMMITTED: &str = "committed";
const COMMITTED_TMP: &str = "committed.tmp";
const COMMITTED_MAGIC: &[u8; 4] = b"SGC1";
const COMMITTED_LEN: usize = 16;
const SEGMENT_SUFFIX: &str = ".seg";
const SPARE_SUFFIX: &str = ".spare";
const SEGMENT_NAME_DIGITS: usize = 20;

/// Delivered segments kept to be written over: one is what a writer keeping pace with its sink
/// needs (the segment delivered while the next fills), a second covers a sink catching up.
/// Each holds up to a segment's size of disk beyond the queue's undelivered bytes.
pub const MAX_SPARES: usize = 2;

/// One offset is remembered per this many records of a segment, so a read that is not where
/// the last one stopped walks at most this many headers instead of the whole segment, for 16
/// bytes of memory per segment per this many records.
const INDEX_EVERY: u64 = 64;

/// Read-ahead while recovery scans a segment: large enough that scanning costs sequential
/// reads rather than one syscall per record.
const SCAN_BUFFER: usize = 256 * 1024;

/// What [`SegmentLog::open`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Undelivered records kept: sequence numbers from the committed position on.
    pub records: u64,
    /// Payload bytes of those records (headers not counted), as a queue counts its depth.
    pub bytes: u64,
    /// Bytes cut: torn or corrupt segment tails and the segments after them.
    pub torn_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("committed-position file {} is corrupt: {reason}", path.display())]
    CorruptCommitted { path: PathBuf, reason: &'static str },
    /// A record that recovery accepted no longer reads back intact (the disk changed under us).
    #[error("record {seq} at offset {offset} of {} is corrupt: {reason}", path.display())]
    CorruptRecord {
        path: PathBuf,
        seq: u64,
        offset: u64,
        reason: &'static str,
    },
    #[error("append of no records")]
    NothingToAppend,
    /// Refused because an empty record could not be told apart from a zero-filled tail.
    #[error("record {index} of the append is empty")]
    EmptyRecord { index: usize },
    #[error("record {index} of the append is {len} bytes, over the {MAX_RECORD_BYTES}-byte limit")]
    RecordTooLarge { index: usize, len: usize },
    #[error("sequence {seq} is not readable: the log holds {committed}..{next_seq}")]
    OutOfRange {
        seq: u64,
        committed: u64,
        next_seq: u64,
    },
    #[error("cannot commit up to {upto}: the log ends at {next_seq}")]
    CommitBeyondEnd { upto: u64, next_seq: u64 },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A segment file as far as it is valid.
#[derive(Debug)]
struct Segment {
    /// Sequence number of its first record (and its name).
    base: u64,
    records: u64,
    /// Bytes of whole records; the file is never longer once recovered.
    len: u64,
    /// `index[k]` is the offset of record `base + k * INDEX_EVERY`.
    index: Vec<u64>,
    /// Created by this process, so every record in it carries its sequence number in its
    /// checksum: once delivered, it may become a spare.
    reusable: bool,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.records
    }
}

/// The handle appends go through: always on the last segment.
struct Writer {
    base: u64,
    file: File,
    /// Written since its last fdatasync.
    dirty: bool,
    /// Made from a spare: bytes of its earlier use follow what is written, so each write ends
    /// with an end marker.
    over_spare: bool,
}

/// The handle reads go through, on whichever segment was read last.
struct Reader {
    base: u64,
    file: File,
}

/// Where the last read stopped, so the next read from there needs no search.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    base: u64,
    seq: u64,
    offset: u64,
}

/// State to restore when an append fails part way, so a failed append appends nothing.
struct Snapshot {
    segments: usize,
    /// `(len, records, index entries)` of the last segment.
    last: Option<(u64, u64, usize)>,
    next_seq: u64,
}

pub struct SegmentLog {
    dir: PathBuf,
    /// Size a segment may reach before appends roll to a new one (0: one record per segment).
    segment_bytes: u64,
    /// In sequence order, contiguous: each starts where the previous one ends.
    segments: VecDeque<Segment>,
    committed: u64,
    next_seq: u64,
    writer: Option<Writer>,
    reader: Option<Reader>,
    cursor: Option<Cursor>,
    /// Handles of segments rolled away from, or dropped after a failed write, that still need
    /// an fdatasync; kept open so `sync` need not reopen them.
    unsynced: Vec<(PathBuf, File)>,
    /// A segment was created since the last sync: its directory entry needs an fsync too.
    dir_dirty: bool,
    /// Reused: one append call becomes one `write_all` per segment it touches.
    write_buf: Vec<u8>,
    /// Reused: one read call is one allocation, handed out as `Bytes` slices of it. Its space
    /// is reclaimed once every slice of the previous read is dropped.
    read_buf: BytesMut,
    /// Reused: payload ranges within `read_buf` of the records being read.
    ranges: Vec<(usize, usize)>,
    /// See [`SegmentLog::delete_in_background`].
    deleter: Option<Deleter>,
    /// Delivered segments to write over, at most [`MAX_SPARES`].
    spares: Vec<PathBuf>,
}

/// The thread that deletes delivered segments, and the paths it is given.
struct Deleter {
    paths: Option<mpsc::Sender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Deleter {
    /// Lets the thread finish the deletions it was given (one left undone would only be done
    /// at the next open).
    fn drop(&mut self) {
        self.paths.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentLog")
            .field("dir", &self.dir)
            .field("segment_bytes", &self.segment_bytes)
            .field("segments", &self.segments.len())
            .field("committed", &self.committed)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl SegmentLog {
    /// Opens (creating) the log in `dir` and recovers it: see the module docs. A committed
    /// position beyond the last record (records delivered and committed before a crash lost
    /// their unsynced data) is clamped: those records were delivered, so the log restarts empty
    /// at the committed position and new records never reuse a delivered sequence number.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(SegmentLog, Recovered), LogError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let tmp = dir.join(COMMITTED_TMP);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &tmp)(e)),
            _ => {}
        }
        let committed = read_committed(dir)?;
        let files = list_segments(dir)?;
        // Spares beyond the bound, or larger than a segment now is (the size was lowered), go.
        let mut spares = Vec::new();
        for (spare, len) in list_spares(dir)? {
            if spares.len() < MAX_SPARES && len <= segment_bytes {
                spares.push(spare);
            } else {
                remove_segment_file(&spare)?;
            }
        }
        let mut recovered = Recovered::default();
        let mut changed = false;

        // Segments before the one holding the committed position are wholly delivered.
        let first = files
            .iter()
            .rposition(|&(base, _)| base <= committed)
            .unwrap_or(0);
        for &(base, _) in &files[..first] {
            remove_segment(dir, base)?;
            changed = true;
        }

        let mut segments = VecDeque::new();
        let mut expected: Option<u64> = None;
        let mut cut = false;
        for &(base, file_len) in &files[first..] {
            let path = segment_path(dir, base);
            if !cut {
                let follows = match expected {
                    None => base <= committed,
                    Some(e) => base == e,
                };
                if !follows {
                    tracing::warn!(path = %path.display(), expected = expected.unwrap_or(committed), "segment does not follow on from the log before it; deleting it and every later segment");
                    cut = true;
                }
            }
            if cut {
                remove_segment(dir, base)?;
                recovered.torn_bytes += file_len;
                changed = true;
                continue;
            }
            let scan = scan_segment(&path, base, committed, file_len)?;
            if let Some((reason, seq)) = scan.problem {
                let torn = file_len - scan.len;
                tracing::warn!(path = %path.display(), seq, offset = scan.len, bytes = torn, reason, "cutting the log at a torn or corrupt record; later segments are deleted");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                file.set_len(scan.len).map_err(io_err("truncate", &path))?;
                file.sync_all().map_err(io_err("fsync", &path))?;
                recovered.torn_bytes += torn;
                cut = true;
                changed = true;
            }
            recovered.bytes += scan.uncommitted_bytes;
            expected = Some(base + scan.records);
            segments.push_back(Segment {
                base,
                records: scan.records,
                len: scan.len,
                index: scan.index,
                reusable: false,
            });
        }

        let end = expected.unwrap_or(committed);
        if end < committed {
            tracing::warn!(dir = %dir.display(), committed, last_record_end = end, "committed position is past the last record (delivered records lost their unsynced data); the log restarts at the committed position");
        }
        let next_seq = end.max(committed);
        while segments.front().is_some_and(|s| s.end() <= committed) {
            if let Some(seg) = segments.pop_front() {
                remove_segment(dir, seg.base)?;
                changed = true;
            }
        }
        if changed {
            sync_dir(dir)?;
        }
        recovered.records = next_seq - committed;
        let log = SegmentLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments,
            committed,
            next_seq,
            writer: None,
            reader: None,
            cursor: None,
            unsynced: Vec::new(),
            dir_dirty: false,
            write_buf: Vec::new(),
            read_buf: BytesMut::new(),
            ranges: Vec::new(),
            deleter: None,
            spares,
        };
        Ok((log, recovered))
    }

    /// From now on [`commit`](Self::commit) hands delivered segments to a thread that deletes
    /// them, instead of deleting them itself. A deletion that fails is logged; the next open
    /// deletes what is left.
    pub fn delete_in_background(&mut self) -> Result<(), LogError> {
        if self.deleter.is_some() {
            return Ok(());
        }
        let (paths, rx) = mpsc::channel::<PathBuf>();
        let thread = std::thread::Builder::new()
            .name("siemgate-segments".to_owned())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = remove_segment_file(&path) {
                        tracing::warn!(error = %e, "cannot delete a delivered disk queue segment; it is deleted at the next start");
                    }
                }
            })
            .map_err(io_err("start the deleting thread for", &self.dir))?;
        self.deleter = Some(Deleter {
            paths: Some(paths),
            thread: Some(thread),
        });
        Ok(())
    }

    /// First undelivered sequence number.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Sequence number the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Appends `records` (each one event's bytes, 1..=[`MAX_RECORD_BYTES`]) and returns the
    /// sequence number of the last. All or nothing: a refused record or a failed write leaves
    /// the log as it was (a write that failed part way is cut back, on disk at once if the disk
    /// lets us, else before the next append). Rolls to a new segment when the current one would
    /// pass the segment size. Does not fsync: see [`sync`](Self::sync).
    pub fn append(&mut self, records: &[Bytes]) -> Result<u64, LogError> {
        if records.is_empty() {
            return Err(LogError::NothingToAppend);
        }
        for (index, r) in records.iter().enumerate() {
            check_record_len(index, r.len())?;
        }
        let snapshot = Snapshot {
            segments: self.segments.len(),
            last: self
                .segments
                .back()
                .map(|s| (s.len, s.records, s.index.len())),
            next_seq: self.next_seq,
        };
        match self.append_inner(records) {
            Ok(()) => Ok(self.next_seq - 1),
            Err(e) => {
                self.rollback(snapshot);
                Err(e)
            }
        }
    }

    fn append_inner(&mut self, records: &[Bytes]) -> Result<(), LogError> {
        if self.segments.is_empty() {
            self.create_segment(self.next_seq)?;
        }
        self.ensure_writer()?;
        self.write_buf.clear();
        for r in records {
            let size = HEADER_U64 + r.len() as u64;
            let used = self.segments.back().map_or(0, |s| s.len) + self.write_buf.len() as u64;
            if used > 0 && used + size > self.segment_bytes {
                self.flush()?;
                self.create_segment(self.next_seq)?;
            }
            let pending = self.write_buf.len() as u64;
            let Some(seg) = self.segments.back_mut() else {
                return Err(self.missing_segment());
            };
            if (self.next_seq - seg.base) % INDEX_EVERY == 0 {
                seg.index.push(seg.len + pending);
            }
            seg.records += 1;
            self.next_seq += 1;
            // check_record_len made sure the length fits.
            self.write_buf
                .extend_from_slice(&(r.len() as u32).to_le_bytes());
            self.write_buf
                .extend_from_slice(&record_crc(self.next_seq - 1, r).to_le_bytes());
            self.write_buf.extend_from_slice(r);
        }
        self.flush()
    }

    /// Writes `write_buf` to the last segment.
    fn flush(&mut self) -> Result<(), LogError> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let (Some(seg), Some(w)) = (self.segments.back_mut(), self.writer.as_mut()) else {
            return Err(self.missing_segment());
        };
        if w.base != seg.base {
            return Err(self.missing_segment());
        }
        w.dirty = true;
        let base = seg.base;
        let records_len = self.write_buf.len() as u64;
        if w.over_spare {
            self.write_buf.extend_from_slice(&end_marker(self.next_seq));
        }
        let written = w.file.write_all_at(&self.write_buf, seg.len);
        self.write_buf.clear();
        written.map_err(|e| io_err("write", &segment_path(&self.dir, base))(e))?;
        seg.len += records_len;
        Ok(())
    }

    /// An internal invariant broke (no segment to append to); reported rather than panicking.
    fn missing_segment(&self) -> LogError {
        LogError::Io {
            op: "append to",
            path: segment_path(&self.dir, self.next_seq),
            source: io::Error::other("no open segment"),
        }
    }

    /// Creates the segment starting at `base` (replacing any leftover file of that name, which
    /// can only hold records a failed append gave up) and makes it the one appends go to. A
    /// spare, when there is one, becomes the segment: renamed, and written over from its start.
    fn create_segment(&mut self, base: u64) -> Result<(), LogError> {
        let path = segment_path(&self.dir, base);
        let (file, over_spare) = match self.reuse_spare(&path) {
            Some(file) => (file, true),
            None => {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(io_err("create", &path))?;
                (file, false)
            }
        };
        self.retire_writer();
        self.dir_dirty = true;
        self.writer = Some(Writer {
            base,
            file,
            dirty: false,
            over_spare,
        });
        self.segments.push_back(Segment {
            base,
            records: 0,
            len: 0,
            index: Vec::new(),
            reusable: true,
        });
        Ok(())
    }

    /// Renames a spare to `path` and opens it for writing, keeping its length and blocks. A
    /// spare that cannot be reused is removed (it is no record anyone waits for) and `None`
    /// returned: the segment is then created afresh.
    fn reuse_spare(&mut self, path: &Path) -> Option<File> {
        let spare = self.spares.pop()?;
        let reused = fs::rename(&spare, path)
            .map_err(io_err("rename", &spare))
            .and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err("open", path))
            });
        match reused {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reuse a delivered disk queue segment; creating a new one");
                if let Err(e) = remove_segment_file(&spare) {
                    tracing::warn!(error = %e, "cannot remove a delivered disk queue segment; it is removed at the next start");
                }
                None
            }
        }
    }

    /// Drops the append handle, keeping it for `sync` if it has unsynced writes.
    fn retire_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            if w.dirty {
                self.unsynced
                    .push((segment_path(&self.dir, w.base), w.file));
            }
        }
    }

    /// Opens the last segment for appends if it is not open, cutting it to its known length
    /// first so bytes of a failed write never stay between records.
    fn ensure_writer(&mut self) -> Result<(), LogError> {
        let Some(seg) = self.segments.back() else {
            return Ok(());
        };
        if self.writer.as_ref().is_some_and(|w| w.base == seg.base) {
            return Ok(());
        }
        let path = segment_path(&self.dir, seg.base);
        let mut file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.set_len(seg.len).map_err(io_err("truncate", &path))?;
        file.seek(SeekFrom::Start(seg.len))
            .map_err(io_err("seek", &path))?;
        let base = seg.base;
        self.retire_writer();
        self.writer = Some(Writer {
            base,
            file,
            dirty: false,
            over_spare: false,
        });
        Ok(())
    }

    fn rollback(&mut self, snapshot: Snapshot) {
        self.retire_writer();
        self.reader = None;
        self.cursor = None;
        while self.segments.len() > snapshot.segments {
            if let Some(seg) = self.segments.pop_back() {
                let path = segment_path(&self.dir, seg.base);
                if let Err(e) = fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove a segment a failed append created; the next one at that position replaces it");
                    }
                }
            }
        }
        if let (Some(seg), Some((len, records, index))) = (self.segments.back_mut(), snapshot.last)
        {
            seg.len = len;
            seg.records = records;
            seg.index.truncate(index);
        }
        self.next_seq = snapshot.next_seq;
        if let Err(e) = self.ensure_writer() {
            tracing::warn!(error = %e, "cannot cut back a failed append now; retrying before the next append");
        }
    }

    /// fdatasyncs every segment written since the last sync, and the directory when a segment
    /// was created. On error, what is still unsynced stays marked for the next call.
    pub fn sync(&mut self) -> Result<(), LogError> {
        while let Some((path, file)) = self.unsynced.last() {
            file.sync_data().map_err(io_err("fdatasync", path))?;
            self.unsynced.pop();
        }
        if let Some(w) = self.writer.as_mut().filter(|w| w.dirty) {
            let base = w.base;
            w.file
                .sync_data()
                .map_err(|e| io_err("fdatasync", &segment_path(&self.dir, base))(e))?;
            w.dirty = false;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Appends to `out` the records from `seq` on, at most `max_records` of them and at most
    /// `max_bytes` of payload, but always the first one when `seq` has a record (so one record
    /// over `max_bytes` cannot get stuck). Verifies each checksum. `seq` must be within
    /// `committed()..=next_seq()`; at `next_seq()` nothing is appended. The records are slices
    /// of one buffer per call (headers between them included).
    pub fn read_from(
        &mut self,
        seq: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<(), LogError> {
        self.read_records(seq, max_records, max_bytes, true, out)
    }

    /// Like [`read_from`](Self::read_from), but `max_bytes` holds for the first record too:
    /// nothing is appended when the record at `seq` is larger (a reader filling a bounded
    /// buffer calls it with the room it has).
    pub fn read_within(
        &mut self,
        seq: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<(), LogError> {
        self.read_records(seq, max_records, max_bytes, false, out)
    }

    fn read_records(
        &mut self,
        seq: u64,
        max_records: usize,
        max_bytes: usize,
        at_least_one: bool,
        out: &mut Vec<Bytes>,
    ) -> Result<(), LogError> {
        let out_of_range = LogError::OutOfRange {
            seq,
            committed: self.committed,
            next_seq: self.next_seq,
        };
        if seq < self.committed || seq > self.next_seq {
            return Err(out_of_range);
        }
        if seq == self.next_seq || max_records == 0 {
            return Ok(());
        }
        let Some(mut idx) = self
            .segments
            .partition_point(|s| s.base <= seq)
            .checked_sub(1)
        else {
            return Err(out_of_range);
        };
        self.ranges.clear();
        self.read_buf.clear();
        let mut seq = seq;
        let mut payload = 0usize;
        let result = loop {
            let limits = (max_records, max_bytes, at_least_one);
            match self.read_segment(idx, &mut seq, limits, &mut payload) {
                Ok(true) if idx + 1 < self.segments.len() => idx += 1,
                Ok(_) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = result {
            self.read_buf.clear();
            self.ranges.clear();
            self.cursor = None;
            return Err(e);
        }
        let data = self.read_buf.split().freeze();
        out.extend(
            self.ranges
                .iter()
                .map(|&(start, end)| data.slice(start..end)),
        );
        self.ranges.clear();
        Ok(())
    }

    /// Reads records of segment `idx` from `*seq` into `read_buf`, within `(max_records,
    /// max_bytes, at_least_one)`. Returns whether it reached the segment's end with room for
    /// more.
    fn read_segment(
        &mut self,
        idx: usize,
        seq: &mut u64,
        (max_records, max_bytes, at_least_one): (usize, usize, bool),
        payload: &mut usize,
    ) -> Result<bool, LogError> {
        let Some(seg) = self.segments.get(idx) else {
            return Ok(false);
        };
        let (base, end_seq, seg_len) = (seg.base, seg.end(), seg.len);
        if *seq >= end_seq {
            return Ok(true);
        }
        let mut offset = self.locate(idx, *seq)?;
        let path = segment_path(&self.dir, base);
        let file = Self::reader_for(&mut self.reader, &self.dir, base)?;

        // Read what the limits allow in one go; a record the estimate cut short is completed
        // below with a second read.
        let want = ((max_records - self.ranges.len()) as u64).min(end_seq - *seq);
        let budget = (max_bytes.saturating_sub(*payload) as u64)
            .saturating_add(want.saturating_mul(HEADER_U64));
        let chunk = budget.max(HEADER_U64).min(seg_len - offset);
        let start = self.read_buf.len();
        read_into(file, &path, offset, &mut self.read_buf, chunk)?;
        let mut pos = start;
        while *seq < end_seq
            && self.ranges.len() < max_records
            && (self.ranges.is_empty() || *payload < max_bytes)
        {
            let buffered_end = offset + (self.read_buf.len() - pos) as u64;
            if self.read_buf.len() < pos + HEADER {
                let need = (pos + HEADER - self.read_buf.len()) as u64;
                read_into(file, &path, buffered_end, &mut self.read_buf, need)?;
            }
            let (len, crc) = parse_header(&self.read_buf[pos..pos + HEADER]);
            let corrupt = |reason| LogError::CorruptRecord {
                path: path.clone(),
                seq: *seq,
                offset,
                reason,
            };
            if len == 0 {
                return Err(corrupt("zero length"));
            }
            if offset + HEADER_U64 + len > seg_len {
                return Err(corrupt("length runs past the end of the segment"));
            }
            let len = len as usize;
            if (!self.ranges.is_empty() || !at_least_one) && *payload + len > max_bytes {
                break;
            }
            let end = pos + HEADER + len;
            if self.read_buf.len() < end {
                let at = offset + (self.read_buf.len() - pos) as u64;
                let need = (end - self.read_buf.len()) as u64;
                read_into(file, &path, at, &mut self.read_buf, need)?;
            }
            let payload_bytes = &self.read_buf[pos + HEADER..end];
            if record_crc(*seq, payload_bytes) != crc && crc32fast::hash(payload_bytes) != crc {
                return Err(corrupt("checksum mismatch"));
            }
            self.ranges.push((pos + HEADER, end));
            *payload += len;
            *seq += 1;
            offset += (HEADER + len) as u64;
            pos = end;
        }
        // Bytes read past the last record taken are not handed out.
        self.read_buf.truncate(pos);
        self.cursor = Some(Cursor {
            base,
            seq: *seq,
            offset,
        });
        Ok(*seq == end_seq && self.ranges.len() < max_records && *payload < max_bytes)
    }

    /// Offset of record `seq` in segment `idx`: from where the last read stopped if that is on
    /// the way, else from the nearest index entry, walking the headers in between.
    fn locate(&mut self, idx: usize, seq: u64) -> Result<u64, LogError> {
        let Some(seg) = self.segments.get(idx) else {
            return Ok(0);
        };
        let base = seg.base;
        let seg_len = seg.len;
        let k = (seq - base) / INDEX_EVERY;
        let (mut at, mut offset) = match seg.index.get(k as usize) {
            Some(&o) => (base + k * INDEX_EVERY, o),
            None => (base, 0),
        };
        if let Some(c) = self.cursor {
            if c.base == base && c.seq <= seq && c.seq >= at {
                (at, offset) = (c.seq, c.offset);
            }
        }
        if at == seq {
            return Ok(offset);
        }
        let path = segment_path(&self.dir, base);
        let file = Self::reader_for(&mut self.reader, &self.dir, base)?;
        let mut header = [0u8; HEADER];
        while at < seq {
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut header))
                .map_err(io_err("read", &path))?;
            let (len, _) = parse_header(&header);
            if len == 0 || offset + HEADER_U64 + len > seg_len {
                return Err(LogError::CorruptRecord {
                    path,
                    seq: at,
                    offset,
                    reason: "bad length",
                });
            }
            offset += HEADER_U64 + len;
            at += 1;
        }
        Ok(offset)
    }

    /// Points the read handle at segment `base` and returns it.
    fn reader_for<'a>(
        reader: &'a mut Option<Reader>,
        dir: &Path,
        base: u64,
    ) -> Result<&'a mut File, LogError> {
        if reader.as_ref().is_none_or(|r| r.base != base) {
            let path = segment_path(dir, base);
            let file = File::open(&path).map_err(io_err("open", &path))?;
            *reader = None;
            return Ok(&mut reader.insert(Reader { base, file }).file);
        }
        match reader.as_mut() {
            Some(r) => Ok(&mut r.file),
            None => Err(io_err("open", &segment_path(dir, base))(io::Error::other(
                "no read handle",
            ))),
        }
    }

    /// Marks every record before `upto` delivered: persists the position durably, then deletes
    /// segments whose records are all delivered, except the last one, which appends still use
    /// (deleting it would cost a new file and a directory fsync on the next append; it goes
    /// once a later segment exists, or at the next open). Positions at or before the committed
    /// one change nothing but retry deletions that failed; past `next_seq()` is an error.
    pub fn commit(&mut self, upto: u64) -> Result<(), LogError> {
        if upto > self.next_seq {
            return Err(LogError::CommitBeyondEnd {
                upto,
                next_seq: self.next_seq,
            });
        }
        if upto > self.committed {
            write_committed(&self.dir, upto)?;
            self.committed = upto;
        }
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.end() <= self.committed)
        {
            let Some(seg) = self.segments.front() else {
                break;
            };
            let base = seg.base;
            let path = segment_path(&self.dir, base);
            let reuse =
                seg.reusable && self.spares.len() < MAX_SPARES && seg.len <= self.segment_bytes;
            if !(reuse && self.keep_as_spare(&path, base)) {
                match self.deleter.as_ref().and_then(|d| d.paths.as_ref()) {
                    Some(paths) => {
                        if let Err(mpsc::SendError(path)) = paths.send(path) {
                            remove_segment_file(&path)?;
                        }
                    }
                    None => remove_segment_file(&path)?,
                }
            }
            self.segments.pop_front();
            if self.reader.as_ref().is_some_and(|r| r.base == base) {
                self.reader = None;
            }
            if self.cursor.is_some_and(|c| c.base == base) {
                self.cursor = None;
            }
        }
        Ok(())
    }

    /// Renames the delivered segment at `path` to a spare. Not synced: lost in a crash, the
    /// rename leaves a delivered segment, which the next open deletes.
    fn keep_as_spare(&mut self, path: &Path, base: u64) -> bool {
        let spare = self.dir.join(format!(
            "{base:0width$}{SPARE_SUFFIX}",
            width = SEGMENT_NAME_DIGITS
        ));
        match fs::rename(path, &spare) {
            Ok(()) => {
                self.spares.push(spare);
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep a delivered disk queue segment for reuse; deleting it");
                false
            }
        }
    }
}

/// A record's checksum: the CRC-32 of its sequence number and payload.
fn record_crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// What ends a write into a segment made from a spare, where record `seq` would start.
fn end_marker(seq: u64) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    out[4..].copy_from_slice(&crc32fast::hash(&seq.to_le_bytes()).to_le_bytes());
    out
}

fn check_record_len(index: usize, len: usize) -> Result<(), LogError> {
    if len == 0 {
        return Err(LogError::EmptyRecord { index });
    }
    if len > MAX_RECORD_BYTES {
        return Err(LogError::RecordTooLarge { index, len });
    }
    Ok(())
}

/// `(payload length, checksum)` from an 8-byte header.
fn parse_header(h: &[u8]) -> (u64, u32) {
    let mut len = [0u8; 4];
    let mut crc = [0u8; 4];
    len.copy_from_slice(&h[..4]);
    crc.copy_from_slice(&h[4..HEADER]);
    (u32::from_le_bytes(len) as u64, u32::from_le_bytes(crc))
}

/// Appends `n` bytes of `file` from `offset` to `buf`.
fn read_into(
    file: &mut File,
    path: &Path,
    offset: u64,
    buf: &mut BytesMut,
    n: u64,
) -> Result<(), LogError> {
    let old = buf.len();
    let n =
        usize::try_from(n).map_err(|_| io_err("read", path)(io::Error::other("read too large")))?;
    buf.resize(old + n, 0);
    let r = file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf[old..]));
    if let Err(e) = r {
        buf.truncate(old);
        return Err(io_err("read", path)(e));
    }
    Ok(())
}

fn segment_name(base: u64) -> String {
    format!(
        "{base:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_name(base))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir` as `(base, length)`, in sequence order. Other files are left alone.
fn list_segments(dir: &Path) -> Result<Vec<(u64, u64)>, LogError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Deleted since the listing (delivered, by the deleting thread).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("stat", &entry.path())(e)),
        };
        if meta.is_file() {
            out.push((base, meta.len()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Spare files in `dir` as `(path, length)`, in name order.
fn list_spares(dir: &Path) -> Result<Vec<(PathBuf, u64)>, LogError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let is_spare = name.to_str().is_some_and(|n| {
            n.strip_suffix(SPARE_SUFFIX).is_some_and(|digits| {
                digits.len() == SEGMENT_NAME_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())
            })
        });
        if !is_spare {
            continue;
        }
        let meta = entry.metadata().map_err(io_err("stat", &entry.path()))?;
        if meta.is_file() {
            out.push((entry.path(), meta.len()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn remove_segment(dir: &Path, base: u64) -> Result<(), LogError> {
    remove_segment_file(&segment_path(dir, base))
}

fn remove_segment_file(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn encode_committed(seq: u64) -> [u8; COMMITTED_LEN] {
    let mut out = [0u8; COMMITTED_LEN];
    out[..4].copy_from_slice(COMMITTED_MAGIC);
    out[4..12].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The committed position: 0 when the file is missing, an error when it is anything but a
/// valid one (guessing could redeliver everything, or skip undelivered records).
fn read_committed(dir: &Path) -> Result<u64, LogError> {
    let path = dir.join(COMMITTED);
    let raw = match fs::read(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let corrupt = |reason| LogError::CorruptCommitted {
        path: path.clone(),
        reason,
    };
    if raw.len() != COMMITTED_LEN {
        return Err(corrupt("wrong length"));
    }
    if &raw[..4] != COMMITTED_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&raw[12..]);
    if crc32fast::hash(&raw[..12]) != u32::from_le_bytes(crc) {
        return Err(corrupt("checksum mismatch"));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&raw[4..12]);
    Ok(u64::from_le_bytes(seq))
}

/// Replaces the committed position atomically and durably.
fn write_committed(dir: &Path, seq: u64) -> Result<(), LogError> {
    let tmp = dir.join(COMMITTED_TMP);
    let path = dir.join(COMMITTED);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    file.write_all(&encode_committed(seq))
        .map_err(io_err("write", &tmp))?;
    file.sync_data().map_err(io_err("fdatasync", &tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))?;
    sync_dir(dir)
}

/// What recovery found in one segment.
struct Scan {
    records: u64,
    /// Length of the valid prefix.
    len: u64,
    uncommitted_bytes: u64,
    index: Vec<u64>,
    /// Why the scan stopped before the end of the file, and at which sequence number.
    problem: Option<(&'static str, u64)>,
}

/// Walks a segment's records. Lengths are checked for every record; checksums only from the
/// committed position on, since delivered records are never read again.
fn scan_segment(path: &Path, base: u64, committed: u64, file_len: u64) -> Result<Scan, LogError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut r = BufReader::with_capacity(SCAN_BUFFER, file);
    let mut scan = Scan {
        records: 0,
        len: 0,
        uncommitted_bytes: 0,
        index: Vec::new(),
        problem: None,
    };
    let mut header = [0u8; HEADER];
    loop {
        let pos = scan.len;
        let seq = base + scan.records;
        if pos == file_len {
            break;
        }
        if file_len - pos < HEADER_U64 {
            scan.problem = Some(("header cut short", seq));
            break;
        }
        r.read_exact(&mut header).map_err(io_err("read", path))?;
        let (len, crc) = parse_header(&header);
        if len == 0 {
            if header != end_marker(seq) {
                scan.problem = Some(("zero length", seq));
            }
            break;
        }
        if pos + HEADER_U64 + len > file_len {
            scan.problem = Some(("payload cut short", seq));
            break;
        }
        if seq >= committed {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&seq.to_le_bytes());
            let mut legacy = crc32fast::Hasher::new();
            let mut left = len as usize;
            while left > 0 {
                let buf = r.fill_buf().map_err(io_err("read", path))?;
                if buf.is_empty() {
                    return Err(io_err("read", path)(io::ErrorKind::UnexpectedEof.into()));
                }
                let n = buf.len().min(left);
                hasher.update(&buf[..n]);
                legacy.update(&buf[..n]);
                r.consume(n);
                left -= n;
            }
            if hasher.finalize() != crc && legacy.finalize() != crc {
                scan.problem = Some(("checksum mismatch", seq));
                break;
            }
            scan.uncommitted_bytes += len;
        } else {
            r.seek_relative(len as i64).map_err(io_err("seek", path))?;
        }
        if scan.records % INDEX_EVERY == 0 {
            scan.index.push(pos);
        }
        scan.records += 1;
        scan.len = pos + HEADER_U64 + len;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::VecDeque;

    use proptest::prelude::*;

    /// Record `i` of `len` bytes, different for every `i` so a misplaced record shows.
    fn record(i: u64, len: usize) -> Bytes {
        let seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..len)
            .map(|k| (seed >> ((k % 8) * 8)) as u8 ^ k as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    fn recs(from: u64, n: u64, len: usize) -> Vec<Bytes> {
        (from..from + n).map(|i| record(i, len)).collect()
    }

    fn read_all(log: &mut SegmentLog) -> Vec<Bytes> {
        let mut out = Vec::new();
        log.read_from(log.committed(), usize::MAX, usize::MAX, &mut out)
            .unwrap();
        out
    }

    fn seg_files(dir: &Path) -> Vec<u64> {
        list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|(b, _)| b)
            .collect()
    }

    fn spare_files(dir: &Path) -> Vec<u64> {
        list_spares(dir)
            .unwrap()
            .iter()
            .map(|(p, _)| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.strip_suffix(SPARE_SUFFIX).unwrap().parse().unwrap()
            })
            .collect()
    }

    fn files_bytes(dir: &Path) -> u64 {
        list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|(_, l)| l)
            .sum()
    }

    #[test]
    fn empty_dir_opens_empty_and_creates_the_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        let (mut log, rec) = SegmentLog::open(&dir, 1024).unwrap();
        assert_eq!(rec, Recovered::default());
        assert_eq!(
            (log.committed(), log.next_seq(), log.disk_bytes()),
            (0, 0, 0)
        );
        assert!(read_all(&mut log).is_empty());
        log.sync().unwrap();
        drop(log);
        let (log, rec) = SegmentLog::open(&dir, 1024).unwrap();
        assert_eq!(rec, Recovered::default());
        assert_eq!(log.next_seq(), 0);
    }

    #[test]
    fn appends_and_reads_across_rollovers() {
        let tmp = tempfile::tempdir().unwrap();
        // 10-byte records take 18 bytes: 5 per 100-byte segment.
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        let mut all = Vec::new();
        for call in 0..7u64 {
            let batch = recs(call * 3, 3, 10);
            assert_eq!(log.append(&batch).unwrap(), call * 3 + 2);
            all.extend(batch);
        }
        assert_eq!(log.next_seq(), 21);
        assert_eq!(seg_files(tmp.path()), [0, 5, 10, 15, 20]);
        assert_eq!(log.disk_bytes(), 21 * 18);
        assert_eq!(files_bytes(tmp.path()), 21 * 18);
        assert_eq!(read_all(&mut log), all);
        // Every starting point, in and across segments, with and without the cursor.
        for start in (0..21).rev() {
            let mut out = Vec::new();
            log.read_from(start, 7, usize::MAX, &mut out).unwrap();
            let end = (start as usize + 7).min(21);
            assert_eq!(out, all[start as usize..end], "from {start}");
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < 21 {
            let before = out.len();
            log.read_from(at, 4, usize::MAX, &mut out).unwrap();
            at += (out.len() - before) as u64;
        }
        assert_eq!(out, all, "sequential reads pick up where they stopped");
        log.read_from(21, 10, 100, &mut out).unwrap();
        assert_eq!(out.len(), 21, "nothing at next_seq");
        assert!(matches!(
            log.read_from(22, 1, 1, &mut out),
            Err(LogError::OutOfRange { seq: 22, .. })
        ));
    }

    #[test]
    fn many_records_per_segment_use_the_index() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        let all: Vec<Bytes> = (0..500)
            .map(|i| record(i, 1 + (i as usize * 7) % 50))
            .collect();
        for chunk in all.chunks(37) {
            log.append(chunk).unwrap();
        }
        for start in [499u64, 0, 64, 63, 65, 200, 130, 1] {
            let mut out = Vec::new();
            log.read_from(start, 3, usize::MAX, &mut out).unwrap();
            let end = (start as usize + 3).min(500);
            assert_eq!(out, all[start as usize..end]);
        }
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        assert_eq!(rec.records, 500);
        let mut out = Vec::new();
        log.read_from(321, 2, usize::MAX, &mut out).unwrap();
        assert_eq!(out, all[321..323]);
    }

    #[test]
    fn commit_deletes_whole_segments_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        let all = recs(0, 12, 10);
        log.append(&all).unwrap();
        assert_eq!(seg_files(tmp.path()), [0, 5, 10]);
        log.commit(4).unwrap();
        assert_eq!(
            seg_files(tmp.path()),
            [0, 5, 10],
            "record 4 is not delivered yet"
        );
        log.commit(7).unwrap();
        assert_eq!(seg_files(tmp.path()), [5, 10]);
        assert_eq!(log.disk_bytes(), 7 * 18);
        let mut out = Vec::new();
        assert!(matches!(
            log.read_from(6, 1, 100, &mut out),
            Err(LogError::OutOfRange { .. })
        ));
        log.read_from(7, 100, usize::MAX, &mut out).unwrap();
        assert_eq!(out, all[7..]);
        log.commit(3).unwrap();
        assert_eq!(log.committed(), 7, "commits never go back");
        assert!(matches!(
            log.commit(13),
            Err(LogError::CommitBeyondEnd {
                upto: 13,
                next_seq: 12
            })
        ));
        log.commit(12).unwrap();
        assert_eq!(seg_files(tmp.path()), [10], "the segment appends use stays");
        assert!(read_all(&mut log).is_empty());
        assert_eq!(log.append(&recs(12, 1, 10)).unwrap(), 12);
        assert_eq!(seg_files(tmp.path()), [10]);
        drop(log);
        let (log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert_eq!((log.committed(), log.next_seq(), rec.records), (12, 13, 1));
    }

    #[test]
    fn reopen_recovers_records_and_committed_position() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        let all: Vec<Bytes> = (0..17).map(|i| record(i, 1 + i as usize % 13)).collect();
        log.append(&all[..9]).unwrap();
        log.append(&all[9..]).unwrap();
        log.commit(6).unwrap();
        log.sync().unwrap();
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        let bytes: u64 = all[6..].iter().map(|b| b.len() as u64).sum();
        assert_eq!(
            rec,
            Recovered {
                records: 11,
                bytes,
                torn_bytes: 0
            }
        );
        assert_eq!((log.committed(), log.next_seq()), (6, 17));
        assert_eq!(read_all(&mut log), all[6..]);
        assert_eq!(log.disk_bytes(), files_bytes(tmp.path()));
        assert_eq!(log.append(&[record(17, 5)]).unwrap(), 17);
        let mut out = Vec::new();
        log.read_from(16, 10, usize::MAX, &mut out).unwrap();
        assert_eq!(out, [all[16].clone(), record(17, 5)]);
    }

    #[test]
    fn torn_tail_at_every_offset_of_the_last_record() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let (mut log, _) = SegmentLog::open(&src, 1 << 20).unwrap();
        let all = recs(0, 4, 20);
        log.append(&all).unwrap();
        log.commit(1).unwrap();
        drop(log);
        let seg = segment_path(&src, 0);
        let full = fs::read(&seg).unwrap();
        let last_start = 3 * (HEADER + 20);
        assert_eq!(full.len(), last_start + HEADER + 20);
        for cut in last_start..full.len() {
            let dir = tmp.path().join(format!("cut{cut}"));
            fs::create_dir(&dir).unwrap();
            fs::copy(src.join(COMMITTED), dir.join(COMMITTED)).unwrap();
            fs::write(segment_path(&dir, 0), &full[..cut]).unwrap();
            let (mut log, rec) = SegmentLog::open(&dir, 1 << 20).unwrap();
            assert_eq!(
                rec,
                Recovered {
                    records: 2,
                    bytes: 40,
                    torn_bytes: (cut - last_start) as u64
                },
                "cut at {cut}"
            );
            assert_eq!(log.next_seq(), 3);
            assert_eq!(
                fs::metadata(segment_path(&dir, 0)).unwrap().len(),
                last_start as u64
            );
            assert_eq!(read_all(&mut log), all[1..3]);
            // The log carries on from the cut.
            assert_eq!(log.append(&[record(99, 7)]).unwrap(), 3);
            drop(log);
            let (mut log, rec) = SegmentLog::open(&dir, 1 << 20).unwrap();
            assert_eq!(rec.torn_bytes, 0);
            assert_eq!(read_all(&mut log)[2], record(99, 7));
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_record_cuts_it() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let (mut log, _) = SegmentLog::open(&src, 1 << 20).unwrap();
        let all = recs(0, 3, 16);
        log.append(&all).unwrap();
        drop(log);
        let full = fs::read(segment_path(&src, 0)).unwrap();
        let last_start = 2 * (HEADER + 16);
        for at in last_start..full.len() {
            let dir = tmp.path().join(format!("flip{at}"));
            fs::create_dir(&dir).unwrap();
            let mut bad = full.clone();
            bad[at] ^= 0xff;
            fs::write(segment_path(&dir, 0), &bad).unwrap();
            let (mut log, rec) = SegmentLog::open(&dir, 1 << 20).unwrap();
            assert_eq!(rec.records, 2, "flip at {at}");
            assert_eq!(rec.torn_bytes, (HEADER + 16) as u64, "flip at {at}");
            assert_eq!(read_all(&mut log), all[..2]);
        }
    }

    #[test]
    fn corruption_mid_log_deletes_later_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        let all = recs(0, 12, 10);
        log.append(&all).unwrap();
        drop(log);
        let seg5 = segment_path(tmp.path(), 5);
        let mut bytes = fs::read(&seg5).unwrap();
        bytes[2 * 18 + HEADER + 3] ^= 1; // payload of record 7
        fs::write(&seg5, &bytes).unwrap();
        let (mut log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert_eq!(rec.records, 7);
        assert_eq!(rec.torn_bytes, 3 * 18 + 2 * 18);
        assert_eq!(seg_files(tmp.path()), [0, 5]);
        assert_eq!(read_all(&mut log), all[..7]);
        assert_eq!(log.append(&recs(7, 4, 10)).unwrap(), 10);
        assert_eq!(seg_files(tmp.path()), [0, 5, 10]);
    }

    #[test]
    fn zero_filled_tail_is_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        log.append(&recs(0, 2, 10)).unwrap();
        drop(log);
        let path = segment_path(tmp.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 64]);
        fs::write(&path, &bytes).unwrap();
        let (log, rec) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (2, 64));
        assert_eq!(log.next_seq(), 2);
    }

    /// With the deleting thread, commit leaves deleting delivered segments to it, once the
    /// spares are kept: they go all the same, and a reopen finds only the undelivered records.
    #[test]
    fn delivered_segments_are_deleted_in_the_background() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 40).unwrap();
        log.delete_in_background().unwrap();
        log.append(&recs(0, 11, 10)).unwrap();
        // Two 18-byte records a segment.
        assert_eq!(seg_files(tmp.path()), vec![0, 2, 4, 6, 8, 10]);
        log.commit(9).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seg_files(tmp.path()).len() > 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(seg_files(tmp.path()), vec![8, 10]);
        assert_eq!(spare_files(tmp.path()), vec![0, 2]);
        assert_eq!(read_all(&mut log), recs(9, 2, 10));
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 40).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (2, 0));
        assert_eq!(read_all(&mut log), recs(9, 2, 10));
    }

    /// A delivered segment becomes a spare, and the next segment is written over it from its
    /// start. The spare's old records after the new ones never come back: not on reopen (the
    /// end marker ends the segment), and not when the marker is lost in a torn write either
    /// (their checksums hold other sequence numbers).
    #[test]
    fn a_delivered_segment_is_written_over_and_its_records_never_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 40).unwrap();
        log.append(&recs(0, 2, 10)).unwrap();
        log.append(&recs(2, 2, 10)).unwrap();
        let first_life = fs::read(segment_path(tmp.path(), 0)).unwrap();
        assert_eq!(first_life.len(), 36);
        log.commit(2).unwrap();
        assert_eq!(seg_files(tmp.path()), [2]);
        assert_eq!(spare_files(tmp.path()), [0]);

        log.append(&recs(4, 1, 10)).unwrap();
        log.sync().unwrap();
        assert_eq!(seg_files(tmp.path()), [2, 4]);
        assert!(
            spare_files(tmp.path()).is_empty(),
            "the spare became segment 4"
        );
        let seg4 = segment_path(tmp.path(), 4);
        let bytes = fs::read(&seg4).unwrap();
        assert_eq!(
            bytes.len(),
            36,
            "written over in place: the spare's length stays"
        );
        assert_eq!(bytes[18..26], end_marker(5));
        assert_eq!(
            bytes[26..],
            first_life[26..],
            "the old bytes after the marker"
        );
        assert_eq!(read_all(&mut log), recs(2, 3, 10));

        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 40).unwrap();
        assert_eq!(
            rec,
            Recovered {
                records: 3,
                bytes: 30,
                torn_bytes: 0
            }
        );
        assert_eq!(read_all(&mut log), recs(2, 3, 10));
        assert_eq!(log.disk_bytes(), 36 + 18);

        // A torn write that lost the marker: record 1 of the first life, whole and with a
        // valid checksum for sequence 1, follows record 4 where record 5 would be.
        drop(log);
        let file = OpenOptions::new().write(true).open(&seg4).unwrap();
        file.write_all_at(&first_life[18..36], 18).unwrap();
        drop(file);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 40).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (3, 18));
        assert_eq!(read_all(&mut log), recs(2, 3, 10));
        assert_eq!(log.append(&recs(5, 1, 10)).unwrap(), 5);
        assert_eq!(read_all(&mut log), recs(2, 4, 10));
    }

    /// A spare that is gone when a segment would be made from it (removed by hand): the
    /// segment is created afresh and nothing is lost.
    #[test]
    fn a_missing_spare_means_a_fresh_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 40).unwrap();
        log.append(&recs(0, 4, 10)).unwrap();
        log.commit(2).unwrap();
        assert_eq!(spare_files(tmp.path()), [0]);
        fs::remove_file(tmp.path().join("00000000000000000000.spare")).unwrap();
        log.append(&recs(4, 1, 10)).unwrap();
        assert_eq!(seg_files(tmp.path()), [2, 4]);
        assert_eq!(
            fs::metadata(segment_path(tmp.path(), 4)).unwrap().len(),
            18,
            "a fresh file, no end marker"
        );
        assert_eq!(read_all(&mut log), recs(2, 3, 10));
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 40).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (3, 0));
        assert_eq!(read_all(&mut log), recs(2, 3, 10));
    }

    /// At most MAX_SPARES delivered segments are kept; the rest are deleted, and spares beyond
    /// that found at open are deleted there, as are spares larger than the segment size now
    /// is. Spares left by an earlier run are reused.
    #[test]
    fn spares_are_bounded_and_outlive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 40).unwrap();
        log.append(&recs(0, 9, 10)).unwrap();
        log.commit(8).unwrap();
        assert_eq!(seg_files(tmp.path()), [8]);
        assert_eq!(spare_files(tmp.path()), [0, 2]);
        drop(log);
        fs::write(tmp.path().join("00000000000000000004.spare"), b"x").unwrap();
        fs::write(tmp.path().join("notes.spare"), b"kept").unwrap();
        let (mut log, rec) = SegmentLog::open(tmp.path(), 40).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (1, 0));
        assert_eq!(spare_files(tmp.path()).len(), MAX_SPARES);
        assert!(
            tmp.path().join("notes.spare").exists(),
            "not a spare: left alone"
        );
        log.append(&recs(9, 4, 10)).unwrap();
        assert_eq!(seg_files(tmp.path()), [8, 10, 12]);
        assert!(spare_files(tmp.path()).is_empty(), "both spares reused");
        assert_eq!(read_all(&mut log), recs(8, 5, 10));
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 40).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (5, 0));
        assert_eq!(read_all(&mut log), recs(8, 5, 10));

        // Recovered segments are deleted once delivered; segments of this run become spares.
        log.append(&recs(13, 4, 10)).unwrap();
        assert_eq!(seg_files(tmp.path()), [8, 10, 12, 14, 16]);
        log.commit(16).unwrap();
        assert_eq!(seg_files(tmp.path()), [16]);
        assert_eq!(spare_files(tmp.path()), [14]);
        drop(log);
        let (_log, _) = SegmentLog::open(tmp.path(), 30).unwrap();
        assert!(
            spare_files(tmp.path()).is_empty(),
            "36-byte spares with 30-byte segments"
        );
    }

    /// Records whose checksum covers the payload alone (the format before the sequence number
    /// went into it) are read, recovered and appended after as before.
    #[test]
    fn records_with_payload_only_checksums_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for r in recs(0, 3, 10) {
            bytes.extend_from_slice(&(r.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&r).to_le_bytes());
            bytes.extend_from_slice(&r);
        }
        fs::write(segment_path(tmp.path(), 0), &bytes).unwrap();
        let (mut log, rec) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (3, 0));
        assert_eq!(read_all(&mut log), recs(0, 3, 10));
        log.append(&recs(3, 2, 10)).unwrap();
        assert_eq!(read_all(&mut log), recs(0, 5, 10));
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (5, 0));
        assert_eq!(read_all(&mut log), recs(0, 5, 10));
    }

    #[test]
    fn committed_position_past_the_last_record_is_clamped() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        log.append(&recs(0, 8, 10)).unwrap();
        log.commit(8).unwrap();
        drop(log);
        assert_eq!(seg_files(tmp.path()), [5], "the segment appends use stays");
        // The crash lost the unsynced records 6.. that had been delivered.
        let seg5 = segment_path(tmp.path(), 5);
        let bytes = fs::read(&seg5).unwrap();
        fs::write(&seg5, &bytes[..18]).unwrap();
        let (mut log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert_eq!(rec, Recovered::default());
        assert_eq!(
            (log.committed(), log.next_seq(), log.disk_bytes()),
            (8, 8, 0)
        );
        assert!(seg_files(tmp.path()).is_empty());
        assert_eq!(log.append(&recs(8, 2, 10)).unwrap(), 9);
        assert_eq!(seg_files(tmp.path()), [8]);
        assert_eq!(read_all(&mut log), recs(8, 2, 10));
    }

    #[test]
    fn leftover_committed_segments_are_deleted_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        let all = recs(0, 12, 10);
        log.append(&all).unwrap();
        let seg0 = fs::read(segment_path(tmp.path(), 0)).unwrap();
        log.commit(5).unwrap();
        drop(log);
        // As if the crash came between persisting the position and deleting the segment.
        fs::write(segment_path(tmp.path(), 0), &seg0).unwrap();
        let (mut log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (7, 0));
        assert_eq!(seg_files(tmp.path()), [5, 10]);
        assert_eq!(read_all(&mut log), all[5..]);
    }

    #[test]
    fn a_gap_between_segments_ends_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        log.append(&recs(0, 12, 10)).unwrap();
        drop(log);
        fs::remove_file(segment_path(tmp.path(), 5)).unwrap();
        let (log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert_eq!((rec.records, rec.torn_bytes), (5, 2 * 18));
        assert_eq!(log.next_seq(), 5);
        assert_eq!(seg_files(tmp.path()), [0]);
    }

    #[test]
    fn committed_file_missing_is_zero_and_corrupt_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        log.append(&recs(0, 3, 10)).unwrap();
        log.commit(2).unwrap();
        drop(log);
        let path = tmp.path().join(COMMITTED);
        let good = fs::read(&path).unwrap();
        assert_eq!(good, encode_committed(2));
        for bad in [
            good[..15].to_vec(),
            {
                let mut b = good.clone();
                b[5] ^= 1;
                b
            },
            {
                let mut b = good.clone();
                b[0] = b'X';
                b
            },
        ] {
            fs::write(&path, &bad).unwrap();
            let err = SegmentLog::open(tmp.path(), 100).unwrap_err();
            assert!(matches!(&err, LogError::CorruptCommitted { path: p, .. } if *p == path));
            assert!(err.to_string().contains("committed"), "{err}");
        }
        fs::remove_file(&path).unwrap();
        let (log, rec) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert_eq!((log.committed(), rec.records), (0, 3));
    }

    #[test]
    fn a_record_bigger_than_a_segment_gets_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 64).unwrap();
        let batch = vec![record(0, 10), record(1, 200), record(2, 10), record(3, 10)];
        assert_eq!(log.append(&batch).unwrap(), 3);
        assert_eq!(seg_files(tmp.path()), [0, 1, 2]);
        assert_eq!(log.append(&[record(4, 300)]).unwrap(), 4);
        assert_eq!(seg_files(tmp.path()), [0, 1, 2, 4]);
        let mut out = Vec::new();
        log.read_from(0, 10, 1, &mut out).unwrap();
        assert_eq!(out, batch[..1]);
        out.clear();
        log.read_from(1, 10, 1, &mut out).unwrap();
        assert_eq!(
            out,
            batch[1..2],
            "one record over max_bytes still comes back"
        );
        drop(log);
        let (mut log, rec) = SegmentLog::open(tmp.path(), 64).unwrap();
        assert_eq!(rec.records, 5);
        let all = read_all(&mut log);
        assert_eq!(all[..4], batch);
        assert_eq!(all[4].len(), 300);
    }

    #[test]
    fn read_respects_byte_and_record_limits_in_one_allocation() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 1 << 20).unwrap();
        let all = recs(0, 6, 10);
        log.append(&all).unwrap();
        let mut out = Vec::new();
        log.read_from(0, 10, 25, &mut out).unwrap();
        assert_eq!(out, all[..2]);
        out.clear();
        log.read_from(0, 10, 5, &mut out).unwrap();
        assert_eq!(out, all[..1], "at least one record");
        out.clear();
        log.read_from(1, 3, usize::MAX, &mut out).unwrap();
        assert_eq!(out, all[1..4]);
        out.clear();
        log.read_from(2, 10, 30, &mut out).unwrap();
        assert_eq!(out, all[2..5]);
        let base = out[0].as_ptr() as usize;
        for (i, b) in out.iter().enumerate() {
            assert_eq!(
                b.as_ptr() as usize,
                base + i * (HEADER + 10),
                "slices of one buffer"
            );
        }
        let mut more = Vec::new();
        log.read_from(0, 0, 100, &mut more).unwrap();
        assert!(more.is_empty());
    }

    #[test]
    fn read_within_holds_the_byte_limit_for_the_first_record_too() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 64).unwrap();
        let batch = vec![record(0, 10), record(1, 30), record(2, 10), record(3, 10)];
        log.append(&batch).unwrap();
        let mut out = Vec::new();
        log.read_within(0, 10, 39, &mut out).unwrap();
        assert_eq!(out, batch[..1]);
        out.clear();
        log.read_within(1, 10, 29, &mut out).unwrap();
        assert!(out.is_empty(), "record 1 alone is over the limit");
        log.read_within(1, 10, 30, &mut out).unwrap();
        assert_eq!(out, batch[1..2]);
        out.clear();
        // Across segments (64 bytes hold two 10-byte records), and to the end.
        log.read_within(1, 10, 1000, &mut out).unwrap();
        assert_eq!(out, batch[1..]);
        out.clear();
        log.read_within(4, 10, 1000, &mut out).unwrap();
        assert!(out.is_empty());
        // Nothing taken means nothing lost: a read after it still starts at the record.
        log.read_within(2, 10, 5, &mut out).unwrap();
        assert!(out.is_empty());
        log.read_from(2, 10, 5, &mut out).unwrap();
        assert_eq!(out, batch[2..3]);
    }

    #[test]
    fn refuses_empty_and_oversized_records_appending_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        assert!(matches!(log.append(&[]), Err(LogError::NothingToAppend)));
        assert!(matches!(
            log.append(&[record(0, 3), Bytes::new()]),
            Err(LogError::EmptyRecord { index: 1 })
        ));
        assert_eq!((log.next_seq(), log.disk_bytes()), (0, 0));
        assert!(check_record_len(0, MAX_RECORD_BYTES).is_ok());
        if let Some(over) = MAX_RECORD_BYTES.checked_add(1) {
            assert!(matches!(
                check_record_len(2, over),
                Err(LogError::RecordTooLarge { index: 2, .. })
            ));
        }
    }

    #[test]
    fn a_failed_append_appends_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(tmp.path(), 100).unwrap();
        log.append(&recs(0, 3, 10)).unwrap();
        // Appending needs a new segment; a directory in its place makes creating it fail.
        fs::create_dir(segment_path(tmp.path(), 5)).unwrap();
        assert!(matches!(
            log.append(&recs(3, 4, 10)),
            Err(LogError::Io { op: "create", .. })
        ));
        assert_eq!((log.next_seq(), log.disk_bytes()), (3, 54));
        assert_eq!(fs::metadata(segment_path(tmp.path(), 0)).unwrap().len(), 54);
        assert_eq!(read_all(&mut log), recs(0, 3, 10));
        fs::remove_dir(segment_path(tmp.path(), 5)).unwrap();
        assert_eq!(log.append(&recs(3, 4, 10)).unwrap(), 6);
        log.sync().unwrap();
        assert_eq!(read_all(&mut log), recs(0, 7, 10));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<usize>),
        Commit(usize),
        Read(usize, usize, usize),
        Sync,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec(1usize..120, 1..8).prop_map(Op::Append),
            2 => (0usize..10).prop_map(Op::Commit),
            3 => (0usize..10, 1usize..10, 1usize..300).prop_map(|(a, b, c)| Op::Read(a, b, c)),
            1 => Just(Op::Sync),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn behaves_like_a_queue(segment_bytes in 16u64..400, ops in proptest::collection::vec(op(), 1..40)) {
            let tmp = tempfile::tempdir().unwrap();
            let (mut log, _) = SegmentLog::open(tmp.path(), segment_bytes).unwrap();
            let mut model: VecDeque<Bytes> = VecDeque::new();
            let mut committed = 0u64;
            for op in ops {
                let next = committed + model.len() as u64;
                match op {
                    Op::Append(lens) => {
                        let batch: Vec<Bytes> = lens.iter().enumerate().map(|(i, &l)| record(next + i as u64, l)).collect();
                        prop_assert_eq!(log.append(&batch).unwrap(), next + lens.len() as u64 - 1);
                        model.extend(batch);
                    }
                    Op::Commit(n) => {
                        let n = n.min(model.len());
                        log.commit(committed + n as u64).unwrap();
                        model.drain(..n);
                        committed += n as u64;
                    }
                    Op::Read(skip, max_records, max_bytes) => {
                        let skip = skip.min(model.len());
                        let mut out = Vec::new();
                        log.read_from(committed + skip as u64, max_records, max_bytes, &mut out).unwrap();
                        let mut want = Vec::new();
                        let mut size = 0;
                        for item in model.iter().skip(skip).take(max_records) {
                            if !want.is_empty() && size + item.len() > max_bytes {
                                break;
                            }
                            size += item.len();
                            want.push(item.clone());
                        }
                        prop_assert_eq!(out, want);
                    }
                    Op::Sync => log.sync().unwrap(),
                    Op::Reopen => {
                        drop(log);
                        let (l, rec) = SegmentLog::open(tmp.path(), segment_bytes).unwrap();
                        log = l;
                        prop_assert_eq!(rec, Recovered {
                            records: model.len() as u64,
                            bytes: model.iter().map(|b| b.len() as u64).sum(),
                            torn_bytes: 0,
                        });
                    }
                }
                prop_assert_eq!(log.committed(), committed);
                prop_assert_eq!(log.next_seq(), committed + model.len() as u64);
                // Segments written over spares keep the spares' length.
                prop_assert!(log.disk_bytes() <= files_bytes(tmp.path()));
            }
            let mut out = Vec::new();
            log.read_from(committed, usize::MAX, usize::MAX, &mut out).unwrap();
            prop_assert_eq!(out, Vec::from(model));
        }
    }
}
