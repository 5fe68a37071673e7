//! askgate patch: the decoder of chunked request bodies, with bounded lines.
//!
//! `chunked_transfer::Decoder` (1.5) buffers a chunk-size line until its
//! CR, without limit: a client sending `1` forever grew the server by
//! 400 MB in 3 s. Here a chunk-size line (extensions included) holds at most
//! `MAX_CHUNK_LINE` bytes and the trailer section at most `MAX_TRAILERS`;
//! trailer fields are read and dropped (the old decoder refused them).
//! Every framing error is an `InvalidData` error, and the decoder reads
//! nothing after one.

use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};

/// The longest chunk-size line, extensions included, its CRLF excluded.
pub const MAX_CHUNK_LINE: usize = 1024;

/// The most bytes of trailer fields after the last chunk, CRLFs included.
pub const MAX_TRAILERS: usize = 4096;

/// Reads a chunked body (RFC 9112 section 7.1) and gives its data.
pub struct ChunkedDecoder<R> {
    source: R,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes of it left.
    Data(usize),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// The last chunk and the trailers have been read.
    Done,
    /// A framing or read error happened; nothing more is read.
    Failed,
}

fn invalid(what: &'static str) -> IoError {
    IoError::new(ErrorKind::InvalidData, what)
}

impl<R: Read> ChunkedDecoder<R> {
    pub fn new(source: R) -> ChunkedDecoder<R> {
        ChunkedDecoder {
            source,
            state: State::Size,
        }
    }

    fn byte(&mut self) -> IoResult<u8> {
        let mut byte = [0];
        loop {
            match self.source.read(&mut byte) {
                Ok(0) => return Err(IoError::new(ErrorKind::UnexpectedEof, "Body cut short")),
                Ok(_) => return Ok(byte[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One line ended by CRLF, of at most `limit` bytes before the CRLF.
    fn line(&mut self, limit: usize) -> IoResult<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\r' => match self.byte()? {
                    b'\n' => return Ok(line),
                    _ => return Err(invalid("Bare CR in chunked framing")),
                },
                b'\n' => return Err(invalid("Bare LF in chunked framing")),
                _ if line.len() >= limit => return Err(invalid("Chunked framing line too long")),
                byte => line.push(byte),
            }
        }
    }

    /// `chunk-size [ chunk-ext ] CRLF`; extensions are ignored.
    fn chunk_size(&mut self) -> IoResult<usize> {
        let line = self.line(MAX_CHUNK_LINE)?;
        let size = match line.iter().position(|&b| b == b';') {
            Some(semicolon) => &line[..semicolon],
            None => &line[..],
        };
        let digits = match size.iter().rposition(|&b| b != b' ' && b != b'\t') {
            Some(last) => &size[..=last],
            None => &[][..],
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid("Malformed chunk size"));
        }
        let digits = std::str::from_utf8(digits).map_err(|_| invalid("Malformed chunk size"))?;
        usize::from_str_radix(digits, 16).map_err(|_| invalid("Chunk size too large"))
    }

    /// The trailer section after the last chunk, up to its empty line.
    fn trailers(&mut self) -> IoResult<()> {
        let mut left = MAX_TRAILERS;
        loop {
            let line = self.line(left)?;
            if line.is_empty() {
                return Ok(());
            }
            left = left.saturating_sub(line.len() + 2);
        }
    }

    fn read_framed(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        loop {
            match self.state {
                State::Size => match self.chunk_size()? {
                    0 => {
                        self.trailers()?;
                        self.state = State::Done;
                    }
                    size => self.state = State::Data(size),
                },
                State::Data(_) if buf.is_empty() => return Ok(0),
                State::Data(left) => {
                    let wanted = buf.len().min(left);
                    let read = self.source.read(&mut buf[..wanted])?;
                    if read == 0 {
                        return Err(IoError::new(ErrorKind::UnexpectedEof, "Body cut short"));
                    }
                    self.state = match left - read {
                        0 => State::DataEnd,
                        left => State::Data(left),
                    };
                    return Ok(read);
                }
                State::DataEnd => {
                    if self.byte()? != b'\r' || self.byte()? != b'\n' {
                        return Err(invalid("Chunk data not followed by CRLF"));
                    }
                    self.state = State::Size;
                }
                State::Done => return Ok(0),
                State::Failed => return Err(invalid("Malformed chunked body")),
            }
        }
    }
}

impl<R: Read> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let result = self.read_framed(buf);
        match &result {
            Err(e) if e.kind() != ErrorKind::Interrupted => self.state = State::Failed,
            _ => (),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::{ChunkedDecoder, MAX_CHUNK_LINE, MAX_TRAILERS};
    use std::io::{ErrorKind, Read};

    fn decode(body: &str) -> Result<String, ErrorKind> {
        let mut decoded = String::new();
        ChunkedDecoder::new(body.as_bytes())
            .read_to_string(&mut decoded)
            .map(|_| decoded)
            .map_err(|e| e.kind())
    }

    fn size(line: &str) -> Result<usize, ErrorKind> {
        ChunkedDecoder::new(line.as_bytes())
            .chunk_size()
            .map_err(|e| e.kind())
    }

    // The chunk sizes are those of chunked_transfer's own tests (taken from
    // hyper's); a lone CR and surrounding blanks are stricter here.
    #[test]
    fn chunk_sizes() {
        for (line, expected) in [
            ("1\r\n", 1),
            ("01\r\n", 1),
            ("0\r\n", 0),
            ("00\r\n", 0),
            ("A\r\n", 10),
            ("a\r\n", 10),
            ("Ff\r\n", 255),
            ("Ff   \r\n", 255),
            ("1;extension\r\n", 1),
            ("a;ext name=value\r\n", 10),
            ("1;extension;extension2\r\n", 1),
            ("1;;;  ;\r\n", 1),
            ("2; extension...\r\n", 2),
            ("3   ; extension=123\r\n", 3),
            ("3   ;\r\n", 3),
            ("3   ;   \r\n", 3),
        ] {
            assert_eq!(size(line), Ok(expected), "{:?}", line);
        }
        for line in [
            "F\rF",
            "F",
            "X\r\n",
            "1X\r\n",
            "-\r\n",
            "-1\r\n",
            "\r\n",
            " 1\r\n",
            "1 A\r\n",
            "1 invalid extension\r\n",
            "1;no CRLF",
            "1\n",
            "1\r\r\n",
        ] {
            assert!(size(line).is_err(), "{:?}", line);
        }
        let too_large = "1".repeat(64);
        assert_eq!(
            size(&format!("{}\r\n", too_large)),
            Err(ErrorKind::InvalidData)
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(
            decode("3\r\nhel\r\nb\r\nlo world!!!\r\n0\r\n\r\n").as_deref(),
            Ok("hello world!!!")
        );
        assert_eq!(decode("0\r\n\r\n").as_deref(), Ok(""));
        assert_eq!(
            decode("2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n").as_deref(),
            Ok("hi")
        );
        assert!(decode("m\r\n\r\n").is_err());
        assert!(decode("2\r\nhel\r\nb\r\nlo world!!!\r\n0\r\n").is_err());
        assert!(decode("3\rhel\r\nb\r\nlo world!!!\r\n0\r\n").is_err());
        assert!(
            decode("3\r\nhel\r\n0\r\n").is_err(),
            "no end of the trailer section"
        );
        assert!(decode("5\r\nhel").is_err(), "cut short");
    }

    #[test]
    fn a_chunk_size_line_is_bounded() {
        let longest = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE - 2));
        assert_eq!(decode(&longest).as_deref(), Ok("x"));
        let endless = "1".repeat(10 * MAX_CHUNK_LINE);
        let mut decoder = ChunkedDecoder::new(endless.as_bytes());
        let error = decoder.read(&mut [0; 16]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        assert_eq!(decoder.source.len(), endless.len() - MAX_CHUNK_LINE - 1);
    }

    #[test]
    fn trailers_are_bounded() {
        let field = format!("X-T: {}\r\n", "t".repeat(100));
        let fitting = field.repeat(MAX_TRAILERS / field.len());
        assert!(decode(&format!("0\r\n{}\r\n", fitting)).is_ok());
        let over = field.repeat(MAX_TRAILERS / field.len() + 1);
        assert_eq!(
            decode(&format!("0\r\n{}\r\n", over)),
            Err(ErrorKind::InvalidData)
        );
    }

    #[test]
    fn nothing_is_read_after_an_error() {
        let mut decoder = ChunkedDecoder::new(&b"zz\r\n1\r\nx\r\n0\r\n\r\n"[..]);
        assert!(decoder.read(&mut [0; 16]).is_err());
        let left = decoder.source.len();
        assert!(decoder.read(&mut [0; 16]).is_err());
        assert_eq!(decoder.source.len(), left);
    }
}
