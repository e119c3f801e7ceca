//! The bounded scans and the time search, on small stores.

use super::*;
use chrono::{TimeDelta, TimeZone as _};

/// A store of `times.len()` requests received at these seconds past midnight (seq 1, 2,
/// ...; a seq in `gaps` is left out), each with an `emailOpen` by `ada@example.com` when
/// its seq is a multiple of `every`, and loaded by the embedded sink.
fn store(times: &[u32], gaps: &[i64], every: i64) -> (tempfile::TempDir, SpoolReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookhouse.db");
    let mut conn = Connection::open(&path).unwrap();
    crate::spool::schema::migrate(&mut conn).unwrap();
    for (index, second) in times.iter().enumerate() {
        let seq = index as i64 + 1;
        if gaps.contains(&seq) {
            continue;
        }
        let at = format_time(&(day() + TimeDelta::seconds(i64::from(*second))));
        conn.execute(
            "INSERT INTO raw_requests (seq, received_at, source, method, path, headers, body, \
             body_sha256) VALUES (?1, ?2, 'default', 'POST', '/iterable/default', '{}', \
             CAST('{}' AS BLOB), '')",
            rusqlite::params![seq, at],
        )
        .unwrap();
        if seq % every == 0 {
            conn.execute(
                "INSERT INTO events (event_id, raw_seq, source, event_name, email, received_at, \
                 data, family) VALUES (?1, ?1, 'default', 'emailOpen', 'ada@example.com', ?2, \
                 '{}', 'email')",
                rusqlite::params![seq, at],
            )
            .unwrap();
        }
    }
    conn.execute(
        "INSERT OR REPLACE INTO sink_cursors (sink, position) VALUES ('sqlite', ?1)",
        [times.len() as i64],
    )
    .unwrap();
    drop(conn);
    let reader = SpoolReader::open(&path).unwrap();
    (dir, reader)
}

fn day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap()
}

#[test]
fn the_seq_of_a_time_is_found_across_gaps_and_equal_times() {
    // seq:      1  2  3  4  5  6  7  8
    // second:  10 20 20 20 30 40 40 50   (seq 4 and 7 missing)
    let (_dir, reader) = store(&[10, 20, 20, 20, 30, 40, 40, 50], &[4, 7], 1);
    let conn = reader.conn();
    let at = |second: i64| day() + TimeDelta::seconds(second);
    let first = |second, strictly| first_seq_at_or_after(conn, &at(second), 8, strictly).unwrap();
    assert_eq!(first(0, false), 1);
    assert_eq!(first(10, false), 1);
    assert_eq!(first(10, true), 2);
    assert_eq!(first(20, false), 2);
    // The smallest threshold: no request 4, so 4 bounds it as well as 5 would.
    assert_eq!(first(20, true), 4);
    assert_eq!(first(35, false), 6);
    assert_eq!(first(40, true), 7);
    assert_eq!(first(50, true), 9);
    assert_eq!(first(99, false), 9);
    let empty = first_seq_at_or_after(conn, &at(0), 0, false).unwrap();
    assert_eq!(empty, 1);
}

fn page(reader: &SpoolReader, filter: &RequestFilter) -> (Vec<i64>, Option<i64>) {
    let page = reader.requests(filter).unwrap();
    (page.requests.iter().map(|r| r.seq).collect(), page.next_before)
}

#[test]
fn a_scan_window_that_ends_a_page_early_says_where_to_go_on() {
    // 100 requests; an event on every 10th.
    let (_dir, reader) = store(&[1; 100], &[], 10);
    let mut filter = RequestFilter {
        limit: 3,
        event: Some("emailOpen".into()),
        bounds: ScanBounds { scan_window: 15, candidates: 4 },
        ..RequestFilter::default()
    };
    // 86..=100 are examined: 90 and 100 match; go on below 86.
    assert_eq!(page(&reader, &filter), (vec![100, 90], Some(86)));
    filter.before = Some(86);
    // 71..=85 are examined.
    assert_eq!(page(&reader, &filter), (vec![80], Some(71)));
    // A window that finds a full page ends at its last row.
    filter.bounds.scan_window = 100;
    filter.before = None;
    assert_eq!(page(&reader, &filter), (vec![100, 90, 80], Some(80)));
    // The last page, in a window that reaches the first request.
    filter.before = Some(21);
    assert_eq!(page(&reader, &filter), (vec![20, 10], None));
}

#[test]
fn an_index_bound_that_ends_a_page_early_says_where_to_go_on() {
    let (_dir, reader) = store(&[1; 100], &[], 10);
    let mut filter = RequestFilter {
        limit: 3,
        who: vec!["ada@example.com".into()],
        source: Some("default".into()),
        bounds: ScanBounds { scan_window: 15, candidates: 2 },
        ..RequestFilter::default()
    };
    // Two candidates (100, 90) both match but the page is not full: go on below 90.
    assert_eq!(page(&reader, &filter), (vec![100, 90], Some(90)));
    filter.before = Some(90);
    assert_eq!(page(&reader, &filter), (vec![80, 70], Some(70)));
    filter.bounds.candidates = 50;
    filter.before = Some(30);
    assert_eq!(page(&reader, &filter), (vec![20, 10], None));
    // Another source: candidates are examined, none matches, and the end is said.
    filter.source = Some("other".into());
    filter.before = None;
    assert_eq!(page(&reader, &filter), (vec![], None));
}

#[test]
fn a_query_past_its_time_limit_is_interrupted() {
    let (_dir, mut reader) = store(&[1; 10], &[], 1);
    reader.limit_query_time(std::time::Duration::ZERO).unwrap();
    let err = reader
        .conn()
        .query_row(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
             SELECT count(*) FROM n",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::OperationInterrupted));
}
