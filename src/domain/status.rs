//! Validation of setStatusMessage input (SPEC §4).

use super::DomainError;

/// The longest status message accepted, in characters (Teams' limit; SPEC §4
/// decision).
pub const MAX_STATUS_MESSAGE_CHARS: usize = 280;

/// A validated status message body: plain text, within the limit. Empty
/// content means "clear the message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessageInput {
    /// The text, with html reduced to its text.
    pub content: String,
}

impl StatusMessageInput {
    /// Validates `content` of `content_type` (`text` or `html`, any case;
    /// absent means text). Html is reduced to its text before the length
    /// check.
    pub fn parse(content: &str, content_type: Option<&str>) -> Result<Self, DomainError> {
        let text = match content_type {
            None => content.to_string(),
            Some(t) if t.eq_ignore_ascii_case("text") => content.to_string(),
            Some(t) if t.eq_ignore_ascii_case("html") => html_to_text(content),
            Some(other) => return Err(DomainError::InvalidContentType(other.to_string())),
        };
        let chars = text.chars().count();
        if chars > MAX_STATUS_MESSAGE_CHARS {
            return Err(DomainError::StatusMessageTooLong(
                chars,
                MAX_STATUS_MESSAGE_CHARS,
            ));
        }
        Ok(Self { content: text })
    }

    /// Whether this input clears the message.
    pub fn is_clear(&self) -> bool {
        self.content.trim().is_empty()
    }
}

/// Drops tags, decodes entities and collapses whitespace.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => {
                in_tag = true;
                text.push(' ');
            }
            (true, '>') => in_tag = false,
            (false, c) => text.push(c),
            (true, _) => {}
        }
    }
    let decoded = html_escape::decode_html_entities(&text);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_as_is() {
        let m = StatusMessageInput::parse("Hey I'm currently in a meeting.", Some("text")).unwrap();
        assert_eq!(m.content, "Hey I'm currently in a meeting.");
        assert!(!m.is_clear());
    }

    #[test]
    fn html_is_reduced_to_its_text() {
        let m = StatusMessageInput::parse("<p>In a <b>meeting</b> &amp; busy</p>", Some("HTML"))
            .unwrap();
        assert_eq!(m.content, "In a meeting & busy");
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        let at_limit = "é".repeat(280);
        assert!(StatusMessageInput::parse(&at_limit, Some("text")).is_ok());
        let over = "a".repeat(281);
        assert_eq!(
            StatusMessageInput::parse(&over, None),
            Err(DomainError::StatusMessageTooLong(281, 280))
        );
    }

    #[test]
    fn empty_content_clears() {
        assert!(StatusMessageInput::parse("", Some("text"))
            .unwrap()
            .is_clear());
        assert!(StatusMessageInput::parse("<br/>", Some("html"))
            .unwrap()
            .is_clear());
    }

    #[test]
    fn unknown_content_types_are_refused() {
        assert_eq!(
            StatusMessageInput::parse("x", Some("markdown")),
            Err(DomainError::InvalidContentType("markdown".into()))
        );
    }
}
