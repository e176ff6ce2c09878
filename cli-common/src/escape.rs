//! Escaping of untrusted text before it reaches a terminal.
//!
//! Names, paths and messages read from an image (or typed on a command
//! line) may hold control characters: an ESC sequence can recolour or clear
//! the terminal, a carriage return or newline can forge an output line, a
//! bidirectional override can reorder what is shown. [`escape`] writes
//! every such character as a visible escape, in the style of Rust's
//! `escape_debug` but without quoting: `\n`, `\r`, `\t`, `\xNN` for the
//! other ASCII controls and DEL, `\u{NNNN}` for C1 controls and
//! bidirectional formatting characters, and `\\` for a backslash so that
//! an escape in the input cannot pass for one made here.

use std::borrow::Cow;

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write;
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
}

/// `text` with every terminal-driving character escaped; borrowed when
/// nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The last guard over a program's whole multi-line output, whose
/// input-derived fields were passed through [`escape`] already: escapes
/// every terminal-driving character except newlines (the output's own
/// line structure) and backslashes (so the fields' escapes stay as they
/// are). It only changes anything when a field was missed.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    let guarded = |c: char| c != '\n' && c != '\\' && needs_escape(c);
    if !text.chars().any(guarded) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if guarded(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("task 7 \"counter\" é"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_become_visible() {
        assert_eq!(escape("a\u{1b}[31mb\u{7}"), "a\\x1b[31mb\\x07");
        assert_eq!(escape("x\r\ny\tz\\"), "x\\r\\ny\\tz\\\\");
        assert_eq!(escape("\u{9b}\u{202e}"), "\\u{009b}\\u{202e}");
        assert_eq!(escape("\u{7f}"), "\\x7f");
        assert_eq!(escape_lines("a\u{1b}\nb\\x07\n"), "a\\x1b\nb\\x07\n");
    }
}
