//! Text a sender chose (a path segment, a header value, a query parameter) made safe for a log
//! line: control characters, invisible format characters and backslashes are escaped, so a
//! sender can neither start a forged line nor send escape sequences to an operator's terminal.

use std::fmt;

/// Sender-chosen text whose `Display` escapes whatever could forge or hide part of a log line.
/// Wrap it where the text is first put into a message (an error's `Display`), so no log line
/// that shows the message can forget to escape it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderText<S>(pub S);

impl<S: AsRef<str>> fmt::Display for SenderText<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.as_ref();
        let mut clean = 0;
        for (at, c) in text.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            f.write_str(&text[clean..at])?;
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                // A backslash is escaped too, so a typed `\n` never reads as an escaped newline.
                '\\' => f.write_str("\\\\")?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
            clean = at + c.len_utf8();
        }
        f.write_str(&text[clean..])
    }
}

/// C0 and C1 controls (newlines, ESC, CSI), Unicode line separators and the invisible format
/// characters that reorder or hide text on screen (bidi overrides, zero-width marks).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\\' | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        SenderText(text).to_string()
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(shown("x\n2026-12-01T18:13:00Z INFO"), "x\\n2026-12-01T18:13:00Z INFO");
        assert_eq!(shown("\u{1b}[31mred\r\t"), "\\u{1b}[31mred\\r\\t");
        assert_eq!(shown("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(shown("abc\u{202e}cba\u{2028}"), "abc\\u{202e}cba\\u{2028}");
        assert_eq!(shown(r"typed \n"), r"typed \\n");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for text in ["", "default", "prod-eu_1", "Zoë's café 東京", "a \"quoted\" `name`"] {
            assert_eq!(shown(text), text);
        }
    }
}
