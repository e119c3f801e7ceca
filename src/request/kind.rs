//! Which route a request came in by. The receiver decides it from the route it matched; the
//! pipeline matches on it and never looks at the path.

/// The path of the Snowplow-compatible endpoint.
pub const SNOWPLOW_PATH: &str = "/com.snowplowanalytics.iglu/v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST /iterable/{source}` or a secret URL: Iterable system webhooks.
    System,
    /// `/iterable/{source}/journey/{name}`: a journey tile's call.
    Journey { name: String },
    /// The Snowplow-shaped path, GET or POST.
    Snowplow,
}

impl RequestKind {
    /// The kind of a request to `path`. Used where the route is matched, and for rows stored
    /// before the kind was recorded (schema 6).
    pub fn of_path(path: &str) -> RequestKind {
        if path == SNOWPLOW_PATH {
            return RequestKind::Snowplow;
        }
        let journey = path
            .strip_prefix("/iterable/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(_source, rest)| rest.strip_prefix("journey/"))
            .filter(|name| !name.is_empty() && !name.contains('/'));
        match journey {
            Some(name) => RequestKind::Journey { name: name.to_owned() },
            None => RequestKind::System,
        }
    }

    /// The stored form: `system`, `journey` or `snowplow` (the journey's name is a column of
    /// its own).
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestKind::System => "system",
            RequestKind::Journey { .. } => "journey",
            RequestKind::Snowplow => "snowplow",
        }
    }

    /// The journey's name, for a journey call.
    pub fn journey(&self) -> Option<&str> {
        match self {
            RequestKind::Journey { name } => Some(name),
            _ => None,
        }
    }

    /// Reads the stored form back; `None` for a kind this version does not know.
    pub fn from_stored(kind: &str, journey: Option<String>) -> Option<RequestKind> {
        match (kind, journey) {
            ("system", _) => Some(RequestKind::System),
            ("snowplow", _) => Some(RequestKind::Snowplow),
            ("journey", Some(name)) => Some(RequestKind::Journey { name }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_paths() {
        assert_eq!(RequestKind::of_path("/iterable/default"), RequestKind::System);
        assert_eq!(RequestKind::of_path("/hooks/secret-3"), RequestKind::System);
        assert_eq!(RequestKind::of_path(SNOWPLOW_PATH), RequestKind::Snowplow);
        assert_eq!(
            RequestKind::of_path("/iterable/shop/journey/welcome"),
            RequestKind::Journey { name: "welcome".to_owned() }
        );
        assert_eq!(RequestKind::of_path("/iterable/shop/journey/"), RequestKind::System);
    }

    #[test]
    fn stored_form_round_trips() {
        for kind in [
            RequestKind::System,
            RequestKind::Snowplow,
            RequestKind::Journey { name: "w".to_owned() },
        ] {
            let journey = kind.journey().map(str::to_owned);
            assert_eq!(RequestKind::from_stored(kind.as_str(), journey), Some(kind));
        }
        assert_eq!(RequestKind::from_stored("sms", None), None);
    }
}
