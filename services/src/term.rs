//! The host terminal side of a virtual console: drawing a [`Screen`] on
//! a real terminal through crossterm, and turning the terminal's key
//! events into the console's key codes.
//!
//! The console service itself never touches the host terminal: its
//! screens live in memory, and whoever attaches (`spartan console`) asks
//! for them and draws them here. A [`Renderer`] remembers what the
//! terminal shows and writes only the cells that changed, so a game
//! redrawn many times a second costs a few bytes per frame.
//!
//! Styles are the console's style words (foreground | background << 8 |
//! attributes << 16, [`crate::console::style`]): a color byte 0 is the
//! terminal's default, 1 to 8 are the ANSI colors black, red, green,
//! yellow, blue, magenta, cyan and white, 9 to 16 their bright forms;
//! the attributes are bold, dim, underline and reverse.

use std::io::{self, Write};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::{
    Attribute, Color, Print, SetAttribute, SetBackgroundColor, SetForegroundColor,
};
use crossterm::{cursor, queue, terminal};

use crate::console::{Screen, key, style};

/// Modifier bits of a key event (ARG2 of `CONSOLE_GET_EVENT`).
pub mod modifier {
    pub const SHIFT: u64 = 1;
    pub const CTRL: u64 = 2;
    pub const ALT: u64 = 4;
}

/// The key that detaches `spartan console` from a virtual console
/// (Ctrl-], as in telnet).
pub const DETACH_KEY: &str = "Ctrl-]";

/// The terminal color of a style's color byte.
pub fn color(byte: u32) -> Color {
    const ANSI: [Color; 16] = [
        Color::Black,
        Color::DarkRed,
        Color::DarkGreen,
        Color::DarkYellow,
        Color::DarkBlue,
        Color::DarkMagenta,
        Color::DarkCyan,
        Color::Grey,
        Color::DarkGrey,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::White,
    ];
    match byte {
        1..=16 => ANSI[byte as usize - 1],
        _ => Color::Reset,
    }
}

/// Queues the escape sequences that switch the terminal to `style`.
fn set_style<W: Write>(out: &mut W, word: u32) -> io::Result<()> {
    let (fg, bg, attrs) = style::parts(word);
    queue!(out, SetAttribute(Attribute::Reset))?;
    for (bit, attr) in [
        (style::BOLD, Attribute::Bold),
        (style::DIM, Attribute::Dim),
        (style::UNDERLINE, Attribute::Underlined),
        (style::REVERSE, Attribute::Reverse),
    ] {
        if attrs & bit != 0 {
            queue!(out, SetAttribute(attr))?;
        }
    }
    queue!(
        out,
        SetForegroundColor(color(fg)),
        SetBackgroundColor(color(bg))
    )
}

/// Draws screens on a terminal, writing only what changed since the last
/// frame.
#[derive(Debug, Default)]
pub struct Renderer {
    /// What the terminal shows (None: unknown, redraw everything).
    shown: Option<Screen>,
    /// The terminal's size when `shown` was drawn.
    size: (u16, u16),
}

impl Renderer {
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// Forgets what the terminal shows (after a resize or anything else
    /// that may have scribbled on it): the next frame is drawn whole.
    pub fn invalidate(&mut self) {
        self.shown = None;
    }

    /// Draws `screen` on a terminal of `size` (columns, rows), with the
    /// cursor at `cursor` if given, and `status` on the row below the
    /// screen when the terminal has one. A screen larger than the
    /// terminal is clipped, and the status row says so.
    pub fn draw<W: Write>(
        &mut self,
        out: &mut W,
        screen: &Screen,
        cursor: Option<(u32, u32)>,
        status: &str,
        size: (u16, u16),
    ) -> io::Result<()> {
        let full = match &self.shown {
            Some(s) => s.cols != screen.cols || s.rows != screen.rows || self.size != size,
            None => true,
        };
        queue!(out, cursor::Hide)?;
        if full {
            queue!(
                out,
                SetAttribute(Attribute::Reset),
                terminal::Clear(terminal::ClearType::All)
            )?;
        }
        let cols = screen.cols.min(u32::from(size.0));
        let rows = screen.rows.min(u32::from(size.1));
        let mut style = None;
        for row in 0..rows {
            // The position of the next cell when it follows the last one
            // written (no cursor move needed).
            let mut at: Option<u32> = None;
            for col in 0..cols {
                let cell = screen.cell(col, row);
                if !full && self.shown.as_ref().map(|s| s.cell(col, row)) == Some(cell) {
                    continue;
                }
                if at != Some(col) {
                    queue!(out, cursor::MoveTo(col as u16, row as u16))?;
                }
                if style != Some(cell.style) {
                    set_style(out, cell.style)?;
                    style = Some(cell.style);
                }
                queue!(out, Print(cell.ch))?;
                at = Some(col + 1);
            }
        }
        if u32::from(size.1) > screen.rows {
            let mut line = if screen.cols > u32::from(size.0) {
                format!(
                    "terminal {}x{} is narrower than the console's {}x{} | {status}",
                    size.0, size.1, screen.cols, screen.rows
                )
            } else {
                status.to_string()
            };
            line = line.chars().take(usize::from(size.0)).collect();
            queue!(
                out,
                SetAttribute(Attribute::Reset),
                SetForegroundColor(Color::Reset),
                SetBackgroundColor(Color::Reset),
                cursor::MoveTo(0, screen.rows as u16),
                terminal::Clear(terminal::ClearType::CurrentLine),
                SetAttribute(Attribute::Reverse),
                Print(line),
                SetAttribute(Attribute::Reset)
            )?;
            style = None;
        }
        if style.is_some() {
            queue!(out, SetAttribute(Attribute::Reset))?;
        }
        if let Some((c, r)) = cursor
            && c < cols
            && r < rows
        {
            queue!(out, cursor::MoveTo(c as u16, r as u16), cursor::Show)?;
        }
        out.flush()?;
        self.shown = Some(screen.clone());
        self.size = size;
        Ok(())
    }
}

/// What a terminal key event means for an attached console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A key for the console: its code and modifier bits.
    Key { code: u64, modifiers: u64 },
    /// The detach key.
    Detach,
}

/// The console key of a terminal key event; `None` for releases and keys
/// the console has no code for.
pub fn input(ev: &KeyEvent) -> Option<Input> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    // Ctrl-] arrives as the byte 0x1d, which terminals also send for
    // Ctrl-5; crossterm reports it as either.
    if ctrl && matches!(ev.code, KeyCode::Char(']') | KeyCode::Char('5')) {
        return Some(Input::Detach);
    }
    let code = match ev.code {
        KeyCode::Char(c) => u64::from(c),
        KeyCode::Enter => key::ENTER,
        KeyCode::Esc => key::ESCAPE,
        KeyCode::Backspace => 0x08,
        KeyCode::Tab => 0x09,
        KeyCode::Up => key::UP,
        KeyCode::Down => key::DOWN,
        KeyCode::Left => key::LEFT,
        KeyCode::Right => key::RIGHT,
        _ => return None,
    };
    let mut modifiers = 0;
    if ev.modifiers.contains(KeyModifiers::SHIFT) {
        modifiers |= modifier::SHIFT;
    }
    if ctrl {
        modifiers |= modifier::CTRL;
    }
    if ev.modifiers.contains(KeyModifiers::ALT) {
        modifiers |= modifier::ALT;
    }
    Some(Input::Key { code, modifiers })
}

/// The host terminal in raw mode on the alternate screen, for as long as
/// this lives; dropping it (also while unwinding) gives the terminal back
/// as it was.
pub struct RawTerminal {
    _private: (),
}

impl RawTerminal {
    pub fn enter() -> io::Result<RawTerminal> {
        terminal::enable_raw_mode()?;
        let t = RawTerminal { _private: () };
        crossterm::execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(t)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = crossterm::execute!(
            io::stdout(),
            SetAttribute(Attribute::Reset),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(lines: &[&str]) -> Screen {
        let cols = lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) as u32;
        let mut s = Screen::new(cols, lines.len() as u32);
        for (row, l) in lines.iter().enumerate() {
            for (col, ch) in l.chars().enumerate() {
                s.set(
                    col as u32,
                    row as u32,
                    crate::console::Cell { ch, style: 0 },
                );
            }
        }
        s
    }

    #[test]
    fn a_second_frame_writes_only_the_changed_cell() {
        let mut r = Renderer::new();
        let mut out = Vec::new();
        let a = screen(&["abc", "def"]);
        r.draw(&mut out, &a, None, "", (80, 24)).unwrap();
        let first = String::from_utf8(out.clone()).unwrap();
        assert!(first.contains('a') && first.contains('f'), "{first:?}");
        out.clear();
        let b = screen(&["abc", "dXf"]);
        r.draw(&mut out, &b, None, "", (80, 24)).unwrap();
        let second = String::from_utf8(out).unwrap();
        assert!(second.contains('X'), "{second:?}");
        for ch in ['a', 'b', 'c', 'd', 'f'] {
            assert!(!second.contains(ch), "{ch} redrawn: {second:?}");
        }
        // The changed cell is at column 1 of row 1 (MoveTo is 1-based).
        assert!(second.contains("\x1b[2;2H"), "{second:?}");
    }

    #[test]
    fn a_resize_redraws_everything_and_clips() {
        let mut r = Renderer::new();
        let mut out = Vec::new();
        let a = screen(&["abcdef", "ghijkl"]);
        r.draw(&mut out, &a, None, "detach: Ctrl-]", (80, 24))
            .unwrap();
        out.clear();
        r.draw(&mut out, &a, None, "detach: Ctrl-]", (3, 5))
            .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("abc") && s.contains("ghi"), "{s:?}");
        assert!(
            !s.contains("def") && !s.contains("jkl"),
            "not clipped: {s:?}"
        );
    }

    #[test]
    fn styles_become_colors_and_attributes() {
        let mut r = Renderer::new();
        let mut out = Vec::new();
        let mut s = Screen::new(2, 1);
        // Red on blue, bold.
        s.set(
            0,
            0,
            crate::console::Cell {
                ch: '#',
                style: style::word(style::RED, style::BLUE, style::BOLD),
            },
        );
        r.draw(&mut out, &s, None, "", (10, 1)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\x1b[1m"), "bold: {text:?}");
        assert!(text.contains("\x1b[38;5;1m"), "red: {text:?}");
        assert!(text.contains("\x1b[48;5;4m"), "blue: {text:?}");
    }

    #[test]
    fn keys_map_to_console_codes() {
        let k = |code, m| input(&KeyEvent::new(code, m));
        assert_eq!(
            k(KeyCode::Char('q'), KeyModifiers::NONE),
            Some(Input::Key {
                code: 'q' as u64,
                modifiers: 0
            })
        );
        assert_eq!(
            k(KeyCode::Left, KeyModifiers::NONE),
            Some(Input::Key {
                code: key::LEFT,
                modifiers: 0
            })
        );
        assert_eq!(
            k(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Input::Key {
                code: 'c' as u64,
                modifiers: modifier::CTRL
            })
        );
        assert_eq!(
            k(KeyCode::Char(']'), KeyModifiers::CONTROL),
            Some(Input::Detach)
        );
        assert_eq!(k(KeyCode::F(5), KeyModifiers::NONE), None);
    }
}
