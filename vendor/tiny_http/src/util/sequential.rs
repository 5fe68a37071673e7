use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use std::mem;

use crate::util::ConnectionEnd;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    next: SyncSender<R>,
    // askgate patch: once marked, the reader is not handed to the next one
    end: ConnectionEnd,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    // askgate patch: `None` for a writer alone (`SequentialWriter::alone`)
    on_finish: Option<SyncSender<()>>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        // askgate patch: each sender sends once, so one slot is enough, and
        // never blocks; an unbounded channel allocated (zeroed) a block of
        // 31 slots with the first send, about 2.5 KiB a request.
        let (tx, rx) = sync_channel(1);

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => Some(SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: tx,
                end: ConnectionEnd::default(),
            }),

            SequentialReaderBuilderInner::NotFirst(previous) => Some(SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: tx,
                end: ConnectionEnd::default(),
            }),
        }
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        // askgate patch: one slot, as for the readers above.
        let (tx, rx) = sync_channel(1);
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        Some(SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: Some(tx),
        })
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    /// askgate patch: the writer the connection's responses share.
    pub fn shared(&self) -> Arc<Mutex<W>> {
        self.writer.clone()
    }
}

impl<W: Write + Send> SequentialWriter<W> {
    /// askgate patch: a writer that waits for no other, and that no other
    /// waits for.
    pub fn alone(writer: W) -> SequentialWriter<W> {
        SequentialWriter {
            trigger: None,
            writer: Arc::new(Mutex::new(writer)),
            on_finish: None,
        }
    }
}

impl<R: Read + Send> SequentialReader<R> {
    /// askgate patch: marking it keeps this reader from handing the stream
    /// to the next one: whatever follows is never read.
    pub fn connection_end(&self) -> ConnectionEnd {
        self.end.clone()
    }
}

impl<R: Read + Send> SequentialReader<std::io::BufReader<R>> {
    /// askgate patch: how many bytes are read already and wait in the
    /// buffer: a read of fewer comes from memory, without waiting on the
    /// socket.
    pub fn buffered(&self) -> usize {
        match self.inner {
            SequentialReaderInner::MyTurn(ref reader) => reader.buffer().len(),
            SequentialReaderInner::Waiting(_) | SequentialReaderInner::Empty => 0,
        }
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut reader = match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => return reader.read(buf),
            // askgate patch: the previous reader ended the connection
            SequentialReaderInner::Waiting(ref mut recv) => recv.recv().map_err(|_| {
                IoError::new(ErrorKind::ConnectionAborted, "Connection ended before")
            })?,
            SequentialReaderInner::Empty => unreachable!(),
        };

        let result = reader.read(buf);
        self.inner = SequentialReaderInner::MyTurn(reader);
        result
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        // askgate patch: a marked end keeps the stream from the next reader
        // (which then fails), and so does an end before this reader's turn.
        match inner {
            SequentialReaderInner::MyTurn(reader) if !self.end.is_marked() => {
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Waiting(recv) if !self.end.is_marked() => {
                if let Ok(reader) = recv.recv() {
                    self.next.send(reader).ok();
                }
            }
            _ => (),
        }
    }
}

impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        if let Some(on_finish) = &self.on_finish {
            on_finish.send(()).ok();
        }
    }
}
