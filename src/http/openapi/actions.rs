//! How each Graph action on a presence is documented: its body schema and
//! what it does, by the name the router's action table gives it.

use std::borrow::Cow;

use utoipa::ToSchema;

use crate::domain::{
    ClearPresenceBody, LocationBody, SetPreferredBody, SetPresenceBody, SetStatusMessageBody,
};

/// How a Graph action on a presence is documented: its body schema, if it
/// takes one, and what it does.
pub(super) struct ActionDoc {
    pub(super) body: Option<Cow<'static, str>>,
    pub(super) summary: &'static str,
}

/// The documentation of each action of [`super::action_table`], by name.
pub(super) fn action_doc(name: &str) -> Option<ActionDoc> {
    let (body, summary) = match name {
        "setPresence" => (
            Some(SetPresenceBody::name()),
            "Set the calling application's presence session for the user.",
        ),
        "clearPresence" => (
            Some(ClearPresenceBody::name()),
            "End the calling application's presence session for the user.",
        ),
        "setUserPreferredPresence" => (
            Some(SetPreferredBody::name()),
            "Set the user's preferred presence, which overrides the sessions.",
        ),
        "clearUserPreferredPresence" => (None, "Clear the user's preferred presence."),
        "setStatusMessage" => (
            Some(SetStatusMessageBody::name()),
            "Set or clear (empty content) the user's status message.",
        ),
        "setManualLocation" => (
            Some(LocationBody::name()),
            "Set the user's manual work location.",
        ),
        "setAutomaticLocation" => (
            Some(LocationBody::name()),
            "Set the user's automatically detected work location.",
        ),
        "clearLocation" => (None, "Clear both work-location layers."),
        "clearAutomaticLocation" => (None, "Clear the automatic work-location layer."),
        _ => return None,
    };
    Some(ActionDoc { body, summary })
}
