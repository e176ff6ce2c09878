//! The console service (persistent id `spartan.console`, service number 2):
//! virtual consoles with an in-memory screen, styled writes, a cursor,
//! the size, and key events.
//!
//! Each virtual console is a screen of cells (a character and a style)
//! and a queue of key events. A client connection writes to one virtual
//! console (0 unless it switches) at its own cursor in its own style;
//! text wraps at the right edge and the screen scrolls at the bottom.
//! Keys come from outside ([`Console::push_key`]: the attached terminal,
//! a scripted player, a test) and go to the oldest read waiting on that
//! console, or wait for one.
//!
//! Protocol (methods from 1100 on, on a connection made through the
//! naming service):
//!
//! | method | arguments | answer |
//! |---|---|---|
//! | `IPC_M_DATA_WRITE` | ARG1 source, ARG2 length (the kernel's data write) | the text is written at the cursor; ARG2 = bytes taken |
//! | [`CONSOLE_GET_SIZE`] | | ARG1 columns, ARG2 rows |
//! | [`CONSOLE_GOTO`] | column, row | (clamped to the screen) |
//! | [`CONSOLE_CLEAR`] | | blank screen, cursor home |
//! | [`CONSOLE_SET_STYLE`] | style word (foreground \| background << 8 \| attributes << 16; [`style`]) | |
//! | [`CONSOLE_GET_EVENT`] | | blocks until a key: ARG1 key ([`key`] codes), ARG2 modifiers |
//! | [`CONSOLE_SWITCH`] | virtual console number (below [`MAX_VCS`]) | the connection writes to and reads from it |
//!
//! Cooperation: a connection's state (its console, cursor and style, and
//! the screen of its console) is exported and imported whole. A read
//! waiting for a key is retracted at a checkpoint (it has changed
//! nothing): the connection is checkpointable at once, and no key is
//! needed; the client's image holds the read as sent, so a restored client
//! reads again. While a connection is held, keys for it wait in its
//! console's queue.

use std::collections::{BTreeMap, VecDeque};
use std::task::Poll;

use spartan_kernel::ipc::method::{IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME, IPC_M_DATA_WRITE};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::{NativeError, NativeTask};
use spartan_kernel::task::{TaskPolicy, ThreadId};

use crate::coop::{ConnState, Coop, Hold};
use crate::ns::NamingService;

/// Persistent service id of the console.
pub const CONSOLE_ID: &str = "spartan.console";
/// Its service number at the naming service.
pub const CONSOLE_NUMBER: u64 = 2;

pub const CONSOLE_GET_SIZE: u64 = 1100;
pub const CONSOLE_GOTO: u64 = 1101;
pub const CONSOLE_CLEAR: u64 = 1102;
pub const CONSOLE_SET_STYLE: u64 = 1103;
pub const CONSOLE_GET_EVENT: u64 = 1104;
pub const CONSOLE_SWITCH: u64 = 1105;

/// Virtual consoles.
pub const MAX_VCS: u32 = 8;
/// The notification that input arrived (ARG1 = virtual console).
pub const NOTIFY_INPUT: u64 = 1200;
/// Largest text of one write.
pub const MAX_WRITE: u64 = 64 << 10;

/// Key codes of [`CONSOLE_GET_EVENT`]: a Unicode scalar value, or one of
/// these (above the Unicode range).
pub mod key {
    pub const UP: u64 = 0x11_0000;
    pub const DOWN: u64 = 0x11_0001;
    pub const LEFT: u64 = 0x11_0002;
    pub const RIGHT: u64 = 0x11_0003;
    pub const ENTER: u64 = 0x0a;
    pub const ESCAPE: u64 = 0x1b;
}

/// The style word of [`CONSOLE_SET_STYLE`]: foreground | background << 8
/// | attributes << 16. A color is 0 for the terminal's default or 1 + an
/// ANSI color number (1 black .. 8 white, 9 .. 16 their bright forms); the
/// in-memory screen stores the word as it is, a terminal shows it.
pub mod style {
    pub const DEFAULT: u32 = 0;
    pub const BLACK: u32 = 1;
    pub const RED: u32 = 2;
    pub const GREEN: u32 = 3;
    pub const YELLOW: u32 = 4;
    pub const BLUE: u32 = 5;
    pub const MAGENTA: u32 = 6;
    pub const CYAN: u32 = 7;
    pub const WHITE: u32 = 8;
    /// Added to a color: its bright form (`BLACK + BRIGHT` is gray).
    pub const BRIGHT: u32 = 8;
    pub const BOLD: u32 = 1;
    pub const DIM: u32 = 2;
    pub const UNDERLINE: u32 = 4;
    pub const REVERSE: u32 = 8;

    /// The style word of a foreground, a background and attributes.
    pub const fn word(fg: u32, bg: u32, attrs: u32) -> u32 {
        (fg & 0xff) | (bg & 0xff) << 8 | (attrs & 0xff) << 16
    }

    /// The foreground, background and attributes of a style word.
    pub const fn parts(word: u32) -> (u32, u32, u32) {
        (word & 0xff, (word >> 8) & 0xff, (word >> 16) & 0xff)
    }
}

/// One cell of a screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub ch: char,
    pub style: u32,
}

const BLANK: Cell = Cell { ch: ' ', style: 0 };

/// A screen of cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screen {
    pub cols: u32,
    pub rows: u32,
    cells: Vec<Cell>,
}

impl Screen {
    pub fn new(cols: u32, rows: u32) -> Screen {
        Screen {
            cols,
            rows,
            cells: vec![BLANK; cols as usize * rows as usize],
        }
    }

    pub fn cell(&self, col: u32, row: u32) -> Cell {
        self.cells[(row * self.cols + col) as usize]
    }

    /// Sets one cell (ignored outside the screen).
    pub fn set(&mut self, col: u32, row: u32, cell: Cell) {
        if col < self.cols && row < self.rows {
            self.cells[(row * self.cols + col) as usize] = cell;
        }
    }

    /// The screen's text, one line per row, trailing blanks removed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for row in 0..self.rows {
            let line: String = (0..self.cols).map(|c| self.cell(c, row).ch).collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn scroll(&mut self) {
        let w = self.cols as usize;
        self.cells.drain(..w);
        self.cells.extend(std::iter::repeat_n(BLANK, w));
    }

    fn clear(&mut self) {
        self.cells.fill(BLANK);
    }

    /// Writes `text` at (`col`, `row`) in `style`; returns the new cursor.
    fn write(&mut self, text: &str, mut col: u32, mut row: u32, style: u32) -> (u32, u32) {
        for ch in text.chars() {
            if ch == '\n' {
                col = 0;
                row += 1;
            } else if ch == '\r' {
                col = 0;
            } else {
                if col >= self.cols {
                    col = 0;
                    row += 1;
                }
                if row >= self.rows {
                    self.scroll();
                    row = self.rows - 1;
                }
                let ch = if ch.is_control() { '\u{fffd}' } else { ch };
                self.cells[(row * self.cols + col) as usize] = Cell { ch, style };
                col += 1;
                continue;
            }
            if row >= self.rows {
                self.scroll();
                row = self.rows - 1;
            }
        }
        (col, row)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.cols.to_le_bytes());
        out.extend(self.rows.to_le_bytes());
        for c in &self.cells {
            out.extend(u32::from(c.ch).to_le_bytes());
            out.extend(c.style.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Result<Screen, String> {
        let word = |i: usize| -> Result<u32, String> {
            bytes
                .get(i * 4..i * 4 + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| "screen truncated".to_string())
        };
        let (cols, rows) = (word(0)?, word(1)?);
        if cols == 0 || rows == 0 || cols > 1000 || rows > 1000 {
            return Err(format!("screen of {cols}x{rows}"));
        }
        let n = cols as usize * rows as usize;
        if bytes.len() != 8 + n * 8 {
            return Err(format!("{} bytes for a {cols}x{rows} screen", bytes.len()));
        }
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let ch = char::from_u32(word(2 + 2 * i)?).ok_or("a cell is no character")?;
            cells.push(Cell {
                ch,
                style: word(3 + 2 * i)?,
            });
        }
        Ok(Screen { cols, rows, cells })
    }
}

/// A client connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleConn {
    pub vc: u32,
    pub col: u32,
    pub row: u32,
    pub style: u32,
    /// A read waiting for a key (retracted at a checkpoint: not exported).
    waiting: Option<RxCallId>,
    /// The screen of its console, carried by export and import only.
    screen: Option<Screen>,
}

impl ConsoleConn {
    fn new() -> ConsoleConn {
        ConsoleConn {
            vc: 0,
            col: 0,
            row: 0,
            style: 0,
            waiting: None,
            screen: None,
        }
    }
}

impl ConnState for ConsoleConn {
    const VERSION: u32 = 1;
    fn checkpointable(&self) -> bool {
        // A waiting read has changed nothing: it is retracted.
        true
    }
    fn export(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [self.vc, self.col, self.row, self.style] {
            out.extend(w.to_le_bytes());
        }
        if let Some(s) = &self.screen {
            s.encode(&mut out);
        }
        out
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        if version != 1 {
            return Err(format!("version {version}, the console reads 1"));
        }
        if bytes.len() < 16 {
            return Err("console state truncated".into());
        }
        let w = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4"));
        if w(0) >= MAX_VCS {
            return Err(format!("virtual console {}", w(0)));
        }
        let screen = if bytes.len() > 16 {
            Some(Screen::decode(&bytes[16..])?)
        } else {
            None
        };
        Ok(ConsoleConn {
            vc: w(0),
            col: w(1),
            row: w(2),
            style: w(3),
            waiting: None,
            screen,
        })
    }
}

struct Vc {
    screen: Screen,
    keys: VecDeque<(u64, u64)>,
}

/// The console service, a native program.
pub struct Console {
    me: NativeTask,
    ns: PhoneId,
    registered: bool,
    coop: Coop<ConsoleConn>,
    vcs: BTreeMap<u32, Vc>,
    cols: u32,
    rows: u32,
}

impl Console {
    /// Starts the console with screens of `cols` x `rows`, registering with
    /// the naming service.
    pub fn spawn(
        k: &mut Kernel,
        ns: &NamingService,
        cols: u32,
        rows: u32,
    ) -> Result<Console, NativeError> {
        let me = k.spawn_native(
            "console",
            TaskPolicy::Cooperative {
                service_id: CONSOLE_ID.into(),
            },
        );
        let phone = ns.connect(k, me.id())?;
        Ok(Console {
            me,
            ns: phone,
            registered: false,
            coop: Coop::default(),
            vcs: BTreeMap::new(),
            cols: cols.clamp(1, 1000),
            rows: rows.clamp(1, 1000),
        })
    }

    fn vc(&mut self, n: u32) -> &mut Vc {
        let (cols, rows) = (self.cols, self.rows);
        self.vcs.entry(n).or_insert_with(|| Vc {
            screen: Screen::new(cols, rows),
            keys: VecDeque::new(),
        })
    }

    /// The screen of virtual console `n`.
    pub fn screen(&mut self, n: u32) -> &Screen {
        &self.vc(n).screen
    }

    /// How many keys wait in virtual console `n`'s queue: typed, not yet
    /// handed to a read.
    pub fn pending_keys(&mut self, n: u32) -> usize {
        self.vc(n).keys.len()
    }

    /// A key for virtual console `vc` (from the terminal or a script): it
    /// is queued, and a notification wakes the console's thread (input
    /// arrives as an interrupt would), which hands it to the oldest read
    /// waiting there, or keeps it for the next one.
    pub fn push_key(&mut self, k: &mut Kernel, vc: u32, key: u64, modifiers: u64) {
        self.vc(vc).keys.push_back((key, modifiers));
        let _ = k.notify(self.me.id(), NOTIFY_INPUT, [u64::from(vc), 0, 0, 0, 0]);
    }

    fn deliver_keys(&mut self, k: &mut Kernel) {
        for id in self.coop.ids() {
            if self.coop.hold(id) != Some(Hold::Live) {
                continue;
            }
            let Some(c) = self.coop.get(id) else { continue };
            let (vc, Some(rx)) = (c.vc, c.waiting) else {
                continue;
            };
            let Some((key, mods)) = self.vc(vc).keys.pop_front() else {
                continue;
            };
            if let Some(c) = self.coop.get_mut(id) {
                c.waiting = None;
            }
            let _ = self.me.answer(k, rx, EOK, [key, mods, 0, 0, 0]);
        }
    }

    fn handle(&mut self, k: &mut Kernel, ev: Event) -> Result<(), NativeError> {
        let Event::Call {
            rx_id,
            conn,
            method,
            args,
            ..
        } = ev
        else {
            return Ok(());
        };
        let ok =
            |k: &mut Kernel, me: &NativeTask, a1, a2| me.answer(k, rx_id, EOK, [a1, a2, 0, 0, 0]);
        if method == IPC_M_CONNECT_ME_TO {
            self.coop.insert(ConnId(args[4]), ConsoleConn::new());
            return ok(k, &self.me, 0, 0);
        }
        if self.coop.get(conn).is_none() {
            return self.me.answer(k, rx_id, Errno::NoEntry.retval(), [0; 5]);
        }
        let me = self.me;
        let c = self.coop.get(conn).cloned().expect("checked");
        match method {
            IPC_M_DATA_WRITE => {
                let len = args[1].min(MAX_WRITE);
                let bytes = me.accept_data_write(k, rx_id, len)?;
                let text = String::from_utf8_lossy(&bytes);
                let (cols, rows) = (self.cols, self.rows);
                let (col, row) = (c.col.min(cols), c.row.min(rows - 1));
                let (col, row) = self.vc(c.vc).screen.write(&text, col, row, c.style);
                if let Some(c) = self.coop.get_mut(conn) {
                    (c.col, c.row) = (col, row);
                }
                Ok(())
            }
            CONSOLE_GET_SIZE => ok(k, &me, u64::from(self.cols), u64::from(self.rows)),
            CONSOLE_GOTO => {
                let (cols, rows) = (self.cols, self.rows);
                if let Some(c) = self.coop.get_mut(conn) {
                    c.col = u32::try_from(args[0]).unwrap_or(u32::MAX).min(cols - 1);
                    c.row = u32::try_from(args[1]).unwrap_or(u32::MAX).min(rows - 1);
                }
                ok(k, &me, 0, 0)
            }
            CONSOLE_CLEAR => {
                self.vc(c.vc).screen.clear();
                if let Some(c) = self.coop.get_mut(conn) {
                    (c.col, c.row) = (0, 0);
                }
                ok(k, &me, 0, 0)
            }
            CONSOLE_SET_STYLE => {
                if let Some(c) = self.coop.get_mut(conn) {
                    c.style = args[0] as u32;
                }
                ok(k, &me, 0, 0)
            }
            CONSOLE_SWITCH => {
                let Ok(vc) = u32::try_from(args[0]) else {
                    return me.answer(k, rx_id, Errno::Invalid.retval(), [0; 5]);
                };
                if vc >= MAX_VCS {
                    return me.answer(k, rx_id, Errno::Invalid.retval(), [0; 5]);
                }
                if let Some(c) = self.coop.get_mut(conn) {
                    c.vc = vc;
                }
                ok(k, &me, 0, 0)
            }
            CONSOLE_GET_EVENT => {
                if c.waiting.is_some() {
                    return me.answer(k, rx_id, Errno::Limit.retval(), [0; 5]);
                }
                if let Some(c) = self.coop.get_mut(conn) {
                    c.waiting = Some(rx_id);
                }
                self.deliver_keys(k);
                Ok(())
            }
            _ => me.answer(k, rx_id, Errno::NotSupported.retval(), [0; 5]),
        }
    }
}

impl Console {
    /// Before the framework sees `ev`: an export takes a copy of the
    /// connection's screen (returns the connection); a hangup answers the
    /// connection's waiting read.
    fn before_coop(&mut self, k: &mut Kernel, ev: &Event) -> Option<ConnId> {
        let Event::Call {
            conn, method, args, ..
        } = ev
        else {
            return None;
        };
        match *method {
            crate::coop::IPC_M_CHKPNT_INIT => {
                let c = ConnId(args[0]);
                let vc = self.coop.get(c)?.vc;
                let screen = self.vc(vc).screen.clone();
                self.coop.get_mut(c)?.screen = Some(screen);
                Some(c)
            }
            spartan_kernel::ipc::method::IPC_M_PHONE_HUNGUP => {
                if self.coop.hold(*conn) == Some(Hold::Live)
                    && let Some(rx) = self.coop.get_mut(*conn).and_then(|c| c.waiting.take())
                {
                    let _ = self.me.answer(k, rx, Errno::Hangup.retval(), [0; 5]);
                }
                None
            }
            _ => None,
        }
    }

    /// After the framework: the export's copy goes; an imported
    /// connection's screen becomes its console's.
    fn after_coop(&mut self, exported: Option<ConnId>) {
        if let Some(c) = exported.and_then(|c| self.coop.get_mut(c)) {
            c.screen = None;
        }
        for id in self.coop.ids() {
            let Some(c) = self.coop.get_mut(id) else {
                continue;
            };
            let vc = c.vc;
            if let Some(screen) = c.screen.take()
                && screen.cols == self.cols
                && screen.rows == self.rows
            {
                self.vc(vc).screen = screen;
            }
        }
    }
}

impl NativeProgram for Console {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        if !self.registered {
            let _ = self.me.call_async(
                k,
                self.ns,
                IPC_M_CONNECT_TO_ME,
                [CONSOLE_NUMBER, 0, 0, 0, 0],
            );
            self.registered = true;
        }
        loop {
            if let Some(ev) = self.coop.released() {
                let _ = self.handle(k, ev);
                continue;
            }
            match self.me.wait(k, FOREVER) {
                Ok(Poll::Ready(ev)) => {
                    let export = self.before_coop(k, &ev);
                    if let Ok(Some(ev)) = self.coop.on_event(k, &self.me, ev) {
                        let _ = self.handle(k, ev);
                    }
                    self.after_coop(export);
                    self.deliver_keys(k);
                }
                Ok(Poll::Pending) => return Step::Continue,
                Err(_) => return Step::Done,
            }
        }
    }
}
