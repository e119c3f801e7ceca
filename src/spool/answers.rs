//! What journey answers read of the embedded tables: the engagement profile of one person, and
//! the first rows of an operator's read-only query with the call's values bound as parameters.
//!
//! An answer is on the path of a journey step that waits for it, so every engagement query
//! is a range of the answer index, `(person, event_name, created_at, source)` covering the
//! columns the answer reads (see `schema::answer_index`): its cost is the person's events of a
//! few names, whatever the store holds, and no event row is read. Queries of `sql` answers run on a read-only connection under an authorizer that allows reading and nothing
//! else, within a time limit.

use std::time::Duration;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, ToSql};

use super::SpoolError;
use super::reader::SpoolReader;
use super::schema;

/// Who an answer is about, as the events name them.
#[derive(Debug, Clone)]
pub enum Person {
    /// The values the `email` column may hold for this address: the address itself, and its
    /// keyed digest for each source that pseudonymises.
    Email(Vec<String>),
    UserId(String),
}

/// The raw figures behind the built-in `engagement` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Engagement {
    pub email_opens: i64,
    pub email_clicks: i64,
    pub sms_clicks: i64,
    pub push_opens: i64,
    /// `created_at` as stored (RFC 3339).
    pub last_open_at: Option<String>,
    pub last_click_at: Option<String>,
    pub last_click_url: Option<String>,
    pub hard_bounced: bool,
    pub complained: bool,
    pub unsubscribed: bool,
}

/// The rows an `sql` answer read: the statement's column names and at most `max_rows` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// The parameter prefixes SQLite takes for a named parameter.
const PARAMETER_PREFIXES: [char; 3] = [':', '@', '$'];

impl SpoolReader {
    /// Prepares this reader for answers: reading only, under [`read_only_authorizer`].
    pub fn for_answers(&mut self) -> Result<(), SpoolError> {
        self.conn().pragma_update(None, "query_only", true)?;
        // Reading in one transaction is what makes an answer's figures agree with each other.
        self.conn_mut().authorizer(Some(|context: AuthContext<'_>| match context.action {
            AuthAction::Transaction { .. } => Authorization::Allow,
            _ => read_only_authorizer(context),
        }))?;
        Ok(())
    }

    /// The engagement of `person` in the events of `sources` (every source: `None`), the
    /// counts of events created at or after `since` (RFC 3339, as stored).
    pub fn engagement(
        &mut self,
        person: &Person,
        sources: Option<&[String]>,
        since: &str,
        limit: Duration,
    ) -> Result<Engagement, SpoolError> {
        self.limit_query_time(limit)?;
        let (column, values): (&str, Vec<&str>) = match person {
            Person::Email(values) => ("email", values.iter().map(String::as_str).collect()),
            Person::UserId(id) => ("user_id", vec![id.as_str()]),
        };
        let sources = sources.unwrap_or(&[]);
        let sql = EngagementSql::new(column, values.len(), sources.len());
        let mut bound: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        bound.extend(sources.iter().map(|s| s as &dyn ToSql));
        let with_since = {
            let mut all = bound.clone();
            all.push(&since as &dyn ToSql);
            all
        };
        self.in_snapshot(|reader| {
            let conn = reader.conn();
            let mut found = Engagement::default();
            let mut statement = conn.prepare_cached(&sql.counts)?;
            let mut rows = statement.query(with_since.as_slice())?;
            while let Some(row) = rows.next()? {
                let count: i64 = row.get(1)?;
                match row.get_ref(0)?.as_str().unwrap_or("") {
                    "emailOpen" => found.email_opens = count,
                    "emailClick" => found.email_clicks = count,
                    "smsClick" => found.sms_clicks = count,
                    _ => found.push_opens = count,
                }
            }
            let one = |sql: &str| -> rusqlite::Result<Option<(String, String, Option<String>)>> {
                conn.prepare_cached(sql)?
                    .query_row(bound.as_slice(), |row| {
                        let extra =
                            if row.as_ref().column_count() > 2 { row.get(2)? } else { None };
                        Ok((row.get(0)?, row.get(1)?, extra))
                    })
                    .optional()
            };
            found.last_open_at = one(&sql.newest_open)?.map(|(at, _, _)| at);
            if let Some((at, _, url)) = one(&sql.newest_click)? {
                found.last_click_at = Some(at);
                found.last_click_url = url;
            }
            let latest = one(&sql.newest_subscription)?;
            found.unsubscribed = latest.is_some_and(|(_, name, _)| name == "emailUnSubscribe");
            let any = |sql: &str| -> rusqlite::Result<bool> {
                conn.prepare_cached(sql)?.query_row(bound.as_slice(), |row| row.get(0))
            };
            found.hard_bounced = any(&sql.hard_bounced)?;
            found.complained = any(&sql.complained)?;
            Ok(found)
        })
    }

    /// Runs an answer's `query` (checked by [`check_answer_query`]) with each named parameter
    /// bound to `value(name)` (the name without its `:`), reading at most `max_rows` rows
    /// within `limit`.
    pub fn answer_rows(
        &mut self,
        query: &str,
        value: impl Fn(&str) -> SqlValue,
        max_rows: usize,
        limit: Duration,
    ) -> Result<AnswerRows, SpoolError> {
        self.limit_query_time(limit)?;
        let conn = self.conn();
        let mut statement = conn.prepare_cached(query)?;
        for index in 1..=statement.parameter_count() {
            let name = statement.parameter_name(index).unwrap_or("");
            let bound = value(name.trim_start_matches(PARAMETER_PREFIXES));
            statement.raw_bind_parameter(index, bound)?;
        }
        let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let mut rows = Vec::new();
        let mut cursor = statement.raw_query();
        while rows.len() < max_rows {
            let Some(row) = cursor.next()? else { break };
            let cells = (0..columns.len())
                .map(|i| row.get::<_, SqlValue>(i))
                .collect::<rusqlite::Result<Vec<SqlValue>>>()?;
            rows.push(cells);
        }
        Ok(AnswerRows { columns, rows })
    }
}

/// The statements of the engagement answer for one person's `values` (`?1..?n`) in the
/// `column` `email` or `user_id`, then the sources (none: every source), then, for the counts,
/// the start of the 30 days. Each reads one range of the answer index and nothing else.
struct EngagementSql {
    counts: String,
    newest_open: String,
    newest_click: String,
    newest_subscription: String,
    hard_bounced: String,
    complained: String,
}

impl EngagementSql {
    fn new(column: &str, values: usize, sources: usize) -> EngagementSql {
        let marks = |from: usize, count: usize| -> String {
            (from..from + count).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
        };
        // `=` for the usual one value; several (an address and its digests under the keys of
        // pseudonymising sources) need `IN`, with `IS NOT NULL` spelling out the partial
        // index's condition.
        let person = match values {
            1 => format!("{column} = ?1"),
            n => format!("{column} IN ({}) AND {column} IS NOT NULL", marks(1, n)),
        };
        let of_sources = match sources {
            0 => String::new(),
            n => format!(" AND source IN ({})", marks(values + 1, n)),
        };
        let since = format!("?{}", values + sources + 1);
        let filter = |names: &str| format!("{person} AND event_name IN ({names}){of_sources}");
        // Named, because the store has no statistics (no ANALYZE) and SQLite's guess for
        // several values and sources was `events_name_created`: every event of four names in
        // 30 days, all people's. The index is made before the port listens.
        let events = format!("events INDEXED BY events_{column}_answer");
        let newest = |names: &str, also: &str| {
            format!(
                "SELECT created_at, event_name{also} FROM {events} WHERE {} AND created_at IS \
                 NOT NULL ORDER BY created_at DESC LIMIT 1",
                filter(names)
            )
        };
        let any = |names: &str, also: &str| {
            format!("SELECT EXISTS (SELECT 1 FROM {events} WHERE {}{also})", filter(names))
        };
        EngagementSql {
            counts: format!(
                "SELECT event_name, count(*) FROM {events} WHERE {} AND created_at >= {since} \
                 GROUP BY event_name",
                filter("'emailOpen', 'emailClick', 'smsClick', 'pushOpen'")
            ),
            newest_open: newest("'emailOpen'", ""),
            newest_click: newest("'emailClick'", ", coalesce(url, link_url)"),
            newest_subscription: newest("'emailSubscribe', 'emailUnSubscribe'", ""),
            // Iterable marks a soft bounce `recipientState: "SoftBounce"`; anything else
            // (`HardBounce`, `Bounced`, none) is taken as hard.
            hard_bounced: any(
                "'emailBounce'",
                " AND coalesce(lower(recipient_state), '') NOT LIKE 'soft%'",
            ),
            complained: any("'emailComplaint'", ""),
        }
    }

    #[cfg(test)]
    fn all(&self) -> [&str; 6] {
        [
            &self.counts,
            &self.newest_open,
            &self.newest_click,
            &self.newest_subscription,
            &self.hard_bounced,
            &self.complained,
        ]
    }
}

/// Whether `query` may be an `sql` answer: one statement that only reads, whose parameters
/// are all named, checked against the store's schema (a new, empty one in memory). The reason
/// is for the operator: it names what to change.
pub fn check_answer_query(query: &str) -> Result<(), String> {
    let mut conn = Connection::open_in_memory().map_err(|err| err.to_string())?;
    schema::migrate(&mut conn).map_err(|err| err.to_string())?;
    conn.authorizer(Some(read_only_authorizer)).map_err(|err| err.to_string())?;
    let statement = conn.prepare(query).map_err(|err| match err {
        rusqlite::Error::MultipleStatement => {
            "it holds more than one statement: an answer runs one `SELECT`".to_owned()
        }
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::AuthorizationForStatementDenied =>
        {
            "it does more than read (answers run read-only: one `SELECT` or `WITH ... SELECT`, \
             no PRAGMA, ATTACH or transaction)"
                .to_owned()
        }
        other => format!("it does not prepare: {other}"),
    })?;
    if !statement.readonly() {
        return Err("it writes: answers run read-only (one `SELECT`)".to_owned());
    }
    if statement.column_count() == 0 {
        return Err("it returns no columns: the first row's columns are the answer".to_owned());
    }
    for index in 1..=statement.parameter_count() {
        let named = statement
            .parameter_name(index)
            .is_some_and(|name| name.starts_with(PARAMETER_PREFIXES) && name.len() > 1);
        if !named {
            return Err(format!(
                "parameter {index} has no name: write `:email`, `:userId` or another name of \
                 the call's query string or body"
            ));
        }
    }
    Ok(())
}

/// Allows reading tables and calling functions, and nothing else: no write, no PRAGMA, no
/// ATTACH, no transaction. The read-only connection refuses writes already; this also
/// refuses what a read-only connection allows but an answer has no business doing.
fn read_only_authorizer(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } if function_name != "load_extension" => {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_named_read_passes_the_check() {
        for query in [
            "SELECT count(*) AS opens FROM events WHERE email = :email",
            "WITH mine AS (SELECT * FROM events WHERE user_id = @userId) SELECT count(*) FROM mine",
            "SELECT $plan AS plan, upper(:email) AS who",
        ] {
            assert_eq!(check_answer_query(query), Ok(()), "{query}");
        }
        let refused = |query: &str| check_answer_query(query).expect_err(query);
        assert!(refused("DELETE FROM events").contains("more than read"));
        assert!(refused("INSERT INTO spool_probe VALUES (1, 'x')").contains("more than read"));
        assert!(refused("UPDATE events SET email = NULL").contains("more than read"));
        assert!(refused("CREATE TABLE x (a)").contains("more than read"));
        assert!(refused("DROP TABLE events").contains("more than read"));
        assert!(refused("ATTACH DATABASE '/tmp/x.db' AS x").contains("more than read"));
        assert!(refused("PRAGMA user_version = 3").contains("more than read"));
        assert!(refused("PRAGMA journal_mode").contains("more than read"));
        assert!(refused("BEGIN").contains("more than read"));
        // Refused one way or another: no such function, or not authorised.
        refused("SELECT load_extension('x')");
        assert!(refused("SELECT 1; DELETE FROM events").contains("more than"));
        assert!(refused("SELECT * FROM no_such_table").contains("does not prepare"));
        assert!(refused("SELECT count(*) FROM events WHERE email = ?").contains("no name"));
    }

    #[test]
    fn every_engagement_statement_reads_the_answer_index_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        schema::answer_index(&conn, true).unwrap();
        for (column, values, sources) in [("email", 1, 0), ("email", 3, 2), ("user_id", 1, 1)] {
            let index = format!("COVERING INDEX events_{column}_answer");
            for sql in EngagementSql::new(column, values, sources).all() {
                // Unbound parameters are NULL: the plan does not depend on the values.
                let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let mut rows = explain.raw_query();
                let mut plan = Vec::new();
                while let Some(row) = rows.next().unwrap() {
                    plan.push(row.get::<_, String>(3).unwrap());
                }
                let plan = plan.join("; ");
                assert!(plan.contains(&index), "{sql}\nplan: {plan}");
                assert!(!plan.contains("SCAN events"), "{sql}\nplan: {plan}");
            }
        }
    }
}
