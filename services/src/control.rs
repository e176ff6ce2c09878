//! The control protocol of a running system (`spartan boot`'s Unix
//! socket): frames, typed requests and responses, the per-connection
//! session that checks them, and the client the commands use. The wire
//! format is specified in `services/CONTROL.md`.
//!
//! A frame is a `u32` little-endian length followed by that many bytes
//! (at most [`MAX_FRAME`]) of a postcard-encoded [`Request`] or
//! [`Response`]. A connection starts with [`Request::Hello`] naming
//! [`PROTOCOL_VERSION`]; every request is answered by exactly one
//! response, in order. Everything arriving is an *allegation* of the
//! peer: [`Session::decode`] turns any byte string into a request or a
//! [`Response::Error`] saying what is wrong, never a panic.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::console::Screen;
use crate::system::{Program, TaskInfo};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// The largest frame (bytes after the length): room for the largest
/// program the system loads.
pub const MAX_FRAME: u32 = (crate::system::MAX_PROGRAM as u32) + (1 << 20);
/// The environment variable naming the socket.
pub const SOCKET_ENV: &str = "SPARTAN_SOCKET";

/// A request to the system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First on every connection.
    Hello { version: u32 },
    /// Start a program.
    Run {
        program: Program,
        /// Integer arguments of its `main`.
        args: Vec<String>,
        /// The task's name (default: the program's file name).
        name: Option<String>,
    },
    /// List the tasks.
    Tasks,
    /// End a task.
    Kill { task: u64 },
    /// Checkpoint the set of `task` into `output` (an absolute path).
    Checkpoint {
        task: u64,
        output: String,
        options: CheckpointRequest,
    },
    /// Restore the image at `image` (an absolute path).
    Restore {
        image: String,
        err_resume: bool,
        timeout_ms: u64,
        /// A service the image names that nobody provides: `cancel` or
        /// `hang-up` (thesis 4.4.7).
        missing: String,
        /// One provided by more than one task: `cancel`, `hang-up` or
        /// `replace`.
        duplicate: String,
        /// Load every page before the tasks resume (else lazily).
        eager: bool,
    },
    /// Stop the system (the socket is removed).
    Shutdown,
    /// The screen of virtual console `vc`, unless its digest is still
    /// `unless` (then [`Response::Unchanged`]): poll it to follow a
    /// console.
    Screen { vc: u32, unless: Option<u64> },
    /// A key for virtual console `vc` (a Unicode scalar value or a
    /// `console::key` code).
    Key { vc: u32, key: u64, modifiers: u64 },
}

/// Variants of [`Request`] (a tag beyond is an unknown request, not a
/// malformed one).
const REQUESTS: u32 = 9;

/// How to checkpoint (the options of `chkpnt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRequest {
    /// One tar file instead of a directory.
    pub tar: bool,
    /// Kill the set after the checkpoint (otherwise it runs on).
    pub kill: bool,
    /// How long to wait for each service.
    pub timeout_ms: u64,
    /// `unchangeable`, `volatile`, `backup-overwrite` or `backup-skip`.
    pub file_policy: String,
    /// Clients of set members outside the set: `include`, `exclude` or
    /// `refuse` (thesis 4.4.3).
    pub clients: String,
    /// An incremental image on top of the image at this absolute path
    /// (since version 2).
    pub parent: Option<String>,
}

impl Default for CheckpointRequest {
    fn default() -> Self {
        CheckpointRequest {
            tar: false,
            kill: false,
            timeout_ms: 1000,
            file_policy: "unchangeable".into(),
            clients: "include".into(),
            parent: None,
        }
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Hello {
        version: u32,
        /// The simulation seed, or `None` in real time.
        sim: Option<u64>,
        root: String,
    },
    Started {
        task: u64,
        name: String,
    },
    Tasks {
        tasks: Vec<TaskInfo>,
    },
    Killed {
        task: u64,
    },
    Checkpointed {
        image: String,
        /// The checkpoint set, task zero first.
        members: Vec<u64>,
        /// Persistent ids of the services that cooperated, one per link.
        services: Vec<String>,
        /// How long the set was stopped (ns; virtual in a simulation).
        frozen_ns: u64,
        /// Pages referenced from the parent (0 for a full image; since
        /// version 2).
        parent_pages: u64,
        /// Pages stored in the image's own chunks.
        stored_pages: u64,
        /// Why tasks or areas of an incremental image were written in
        /// full, one line each.
        notes: Vec<String>,
    },
    Restored {
        /// (id in the image, new id), by image id.
        tasks: Vec<(u64, u64)>,
    },
    ShuttingDown,
    Screen(ScreenView),
    Unchanged,
    KeySent,
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// What kind of failure a [`Response::Error`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The frame does not decode as a request.
    Malformed,
    /// The frame is longer than [`MAX_FRAME`] (the connection is closed).
    TooLarge,
    /// The hello named another protocol version (closed).
    Version,
    /// A request this version does not know.
    Unknown,
    /// A request before the hello, or a second hello (closed).
    Handshake,
    /// The peer runs as another user (closed).
    Permission,
    /// The request was unusable: a bad path, argument or image (a
    /// command's exit status 2).
    Usage,
    /// The system refused or failed (exit status 1).
    Refused,
}

impl ErrorKind {
    /// Whether the server closes the connection after this error.
    pub fn closes(self) -> bool {
        matches!(
            self,
            ErrorKind::TooLarge | ErrorKind::Version | ErrorKind::Handshake | ErrorKind::Permission
        )
    }
}

/// A copy of a virtual console's screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenView {
    pub vc: u32,
    pub cols: u32,
    pub rows: u32,
    /// Row-major characters and styles (`cols * rows` of each).
    pub chars: Vec<char>,
    pub styles: Vec<u32>,
    /// A digest of the cells (FNV-1a), for [`Request::Screen`]'s `unless`.
    pub digest: u64,
}

impl ScreenView {
    pub fn of(vc: u32, s: &Screen) -> ScreenView {
        let mut chars = Vec::with_capacity((s.cols * s.rows) as usize);
        let mut styles = Vec::with_capacity(chars.capacity());
        for row in 0..s.rows {
            for col in 0..s.cols {
                let c = s.cell(col, row);
                chars.push(c.ch);
                styles.push(c.style);
            }
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |w: u32| {
            for b in w.to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        };
        eat(s.cols);
        eat(s.rows);
        for (c, st) in chars.iter().zip(&styles) {
            eat(*c as u32);
            eat(*st);
        }
        ScreenView {
            vc,
            cols: s.cols,
            rows: s.rows,
            chars,
            styles,
            digest: h,
        }
    }

    /// The screen it copies (cells that do not fit its size are dropped).
    pub fn screen(&self) -> Screen {
        let mut s = Screen::new(self.cols.max(1), self.rows.max(1));
        let cells = self.chars.iter().zip(&self.styles);
        for (i, (ch, style)) in cells.enumerate().take((s.cols * s.rows) as usize) {
            let i = i as u32;
            s.set(
                i % s.cols,
                i / s.cols,
                crate::console::Cell {
                    ch: *ch,
                    style: *style,
                },
            );
        }
        s
    }

    /// The text, one line per row, trailing blanks removed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for row in self.chars.chunks(self.cols.max(1) as usize) {
            let line: String = row.iter().collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("the connection was closed")]
    Closed,
    #[error("frame of {0} bytes is larger than the maximum of {MAX_FRAME}")]
    TooLarge(u32),
    #[error("the connection was closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame's payload.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(buf)
}

/// Writes `payload` as one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend(len.to_le_bytes());
    frame.extend(payload);
    w.write_all(&frame)?;
    w.flush()
}

/// Encodes a message (requests and responses always encode).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_allocvec(msg).expect("protocol messages always encode")
}

/// An error response.
pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        kind,
        message: message.into(),
    }
}

/// The server's view of one connection: whether it said hello.
#[derive(Debug, Default)]
pub struct Session {
    greeted: bool,
}

/// What a session makes of a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Answer this at once (a hello, or an error).
    Reply(Response),
    /// A request for the system.
    Request(Request),
}

impl Session {
    /// Checks a frame: the handshake, the version, the encoding.
    pub fn decode(&mut self, frame: &[u8]) -> Decoded {
        let req = match postcard::from_bytes::<Request>(frame) {
            Ok(r) => {
                // Trailing bytes after a request are malformed.
                match postcard::take_from_bytes::<Request>(frame) {
                    Ok((_, rest)) if !rest.is_empty() => {
                        return Decoded::Reply(error(
                            ErrorKind::Malformed,
                            format!("{} bytes after the request", rest.len()),
                        ));
                    }
                    _ => r,
                }
            }
            Err(e) => {
                let tag = postcard::take_from_bytes::<u32>(frame).map(|(t, _)| t);
                return Decoded::Reply(match tag {
                    Ok(t) if t >= REQUESTS => error(
                        ErrorKind::Unknown,
                        format!(
                            "unknown request {t} (protocol version {PROTOCOL_VERSION} knows 0 to {})",
                            REQUESTS - 1
                        ),
                    ),
                    _ if !self.greeted => error(
                        ErrorKind::Handshake,
                        format!("the first request must be a hello: it does not decode ({e})"),
                    ),
                    _ => error(
                        ErrorKind::Malformed,
                        format!("the request does not decode: {e}"),
                    ),
                });
            }
        };
        match (self.greeted, req) {
            (false, Request::Hello { version }) if version == PROTOCOL_VERSION => {
                self.greeted = true;
                Decoded::Request(Request::Hello { version })
            }
            (false, Request::Hello { version }) => Decoded::Reply(error(
                ErrorKind::Version,
                format!(
                    "protocol version {version} is not supported (this system speaks {PROTOCOL_VERSION})"
                ),
            )),
            (false, _) => Decoded::Reply(error(
                ErrorKind::Handshake,
                "the first request must be a hello",
            )),
            (true, Request::Hello { .. }) => {
                Decoded::Reply(error(ErrorKind::Handshake, "a second hello"))
            }
            (true, r) => Decoded::Request(r),
        }
    }
}

/// The socket a command talks to: `explicit`, else `$SPARTAN_SOCKET`,
/// else `$XDG_RUNTIME_DIR/spartan.sock`, else `/tmp/spartan-$UID/control.sock`.
pub fn socket_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(d).join("spartan.sock");
    }
    // Safety: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/spartan-{uid}/control.sock"))
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the path (no file, a stale socket, not a socket).
    #[error("no system is running on {}: {why}", path.display())]
    NotRunning { path: PathBuf, why: String },
    #[error("talking to the system on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the system on {}: {source}", path.display())]
    Frame { path: PathBuf, source: FrameError },
    #[error("the system on {} sent a response that does not decode: {why}", path.display())]
    BadResponse { path: PathBuf, why: String },
    /// The system answered with an error.
    #[error("{message}")]
    System { kind: ErrorKind, message: String },
    #[error("the system on {} answered {got} to {asked}", path.display())]
    Unexpected {
        path: PathBuf,
        asked: &'static str,
        got: String,
    },
}

impl ClientError {
    /// Whether this is the caller's fault (exit status 2) rather than a
    /// refusal or failure of the system (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ClientError::System {
                kind: ErrorKind::Usage,
                ..
            }
        )
    }
}

/// A connection to a running system.
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    /// What the system said to the hello.
    pub hello: Response,
}

impl Client {
    /// Connects and says hello.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let not_running = |why: String| ClientError::NotRunning {
            path: path.to_path_buf(),
            why,
        };
        match path.symlink_metadata() {
            Err(e) => return Err(not_running(e.to_string())),
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_socket() {
                    return Err(not_running("it is not a socket".into()));
                }
            }
        }
        let stream = UnixStream::connect(path).map_err(|e| {
            not_running(match e.kind() {
                io::ErrorKind::ConnectionRefused => {
                    "nobody listens on the socket (a stale socket?)".into()
                }
                _ => e.to_string(),
            })
        })?;
        let mut c = Client {
            path: path.to_path_buf(),
            stream,
            hello: Response::Unchanged,
        };
        let hello = c.request(&Request::Hello {
            version: PROTOCOL_VERSION,
        })?;
        match hello {
            Response::Hello { version, .. } if version == PROTOCOL_VERSION => {}
            other => return Err(c.unexpected("hello", &other)),
        }
        c.hello = hello;
        Ok(c)
    }

    /// Sends a request and reads its response; an error response becomes
    /// [`ClientError::System`].
    pub fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let written = write_frame(&mut self.stream, &encode(req));
        let frame = match (written, read_frame(&mut self.stream)) {
            (_, Ok(frame)) => frame,
            // The system may have refused the connection (another user,
            // too many connections) before the request went out: its
            // error frame says why, if it is there.
            (Err(e), Err(_)) => return Err(io(e)),
            (Ok(()), Err(source)) => {
                return Err(ClientError::Frame {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let resp: Response =
            postcard::from_bytes(&frame).map_err(|e| ClientError::BadResponse {
                path: self.path.clone(),
                why: e.to_string(),
            })?;
        match resp {
            Response::Error { kind, message } => Err(ClientError::System { kind, message }),
            r => Ok(r),
        }
    }

    /// An [`ClientError::Unexpected`] for a response of the wrong kind.
    pub fn unexpected(&self, asked: &'static str, got: &Response) -> ClientError {
        let got = format!("{got:?}");
        ClientError::Unexpected {
            path: self.path.clone(),
            asked,
            got: got.chars().take(80).collect(),
        }
    }

    /// The raw stream (tests send garbage through it).
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.stream
    }
}
