//! `hookhouse simulate`: realistic Iterable system-webhook traffic sent to a receiver at a
//! chosen rate, and a summary of what it acknowledged. It talks to the receiver only over
//! HTTP, like Iterable does, so it can load any hookhouse, local or remote.
//!
//! - `traffic`: which event comes next; `bodies` and `values`: what it looks like.
//! - `sender`: pacing, bounded concurrency, stopping.
//! - `report`: progress line and [`Summary`].

mod bodies;
mod report;
mod sender;
mod traffic;
mod values;

pub use report::Summary;
pub use traffic::{EVENT_NAMES, Traffic, UnknownEventName, event_name};

use std::future::Future;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// The events sent when neither `--count` nor `--duration` is given.
const DEFAULT_COUNT: u64 = 100;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The full endpoint, such as `http://127.0.0.1:8080/iterable/default`.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub url: Url,
    /// Events per second; 0 sends as fast as `--concurrency` allows.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub rate: u32,
    /// How long to send: a number and `s`, `m` or `h`, such as `30s` or `2m`.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How many events to send [default: 100 unless `--duration` is given].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Comma-separated event names to send, such as `emailOpen,smsBounce` [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_event_name)]
    pub events: Vec<&'static str>,
    /// An extra request header, such as `Authorization: OAuth2 <token>`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<Header>,
    /// Requests in flight at once.
    #[arg(long, value_name = "C", default_value_t = 16)]
    pub concurrency: usize,
    /// Seeds the generator, so a run's sequence of events can be repeated.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// A `--header`: its value is marked sensitive, so `Debug` never shows a token.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// Arguments that do not make sense together; each problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("invalid `simulate` arguments: {}", .0.join("; "))]
pub struct ArgsError(Vec<String>);

/// Validated arguments.
#[derive(Debug)]
struct Plan {
    url: Url,
    rate: u32,
    limit: Limit,
    events: Vec<&'static str>,
    /// The user's headers, and `Content-Type: application/json` unless they set their own.
    headers: HeaderMap,
    concurrency: usize,
    seed: Option<u64>,
}

/// When a run ends (besides ctrl-c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Count(u64),
    Duration(Duration),
}

impl Plan {
    fn new(args: SimulateArgs) -> Result<Self, ArgsError> {
        let mut problems = Vec::new();
        let limit = match (args.count, args.duration) {
            (Some(_), Some(_)) => {
                problems.push("give `--duration` or `--count`, not both".to_owned());
                Limit::Count(0)
            }
            (Some(0), None) => {
                problems.push("`--count` must be at least 1".to_owned());
                Limit::Count(0)
            }
            (Some(count), None) => Limit::Count(count),
            (None, Some(duration)) if duration.is_zero() => {
                problems.push("`--duration` must be longer than zero".to_owned());
                Limit::Duration(duration)
            }
            (None, Some(duration)) => Limit::Duration(duration),
            (None, None) => Limit::Count(DEFAULT_COUNT),
        };
        if args.concurrency == 0 {
            problems.push("`--concurrency` must be at least 1".to_owned());
        }
        if !problems.is_empty() {
            return Err(ArgsError(problems));
        }
        let mut headers = HeaderMap::new();
        for Header { name, mut value } in args.headers {
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let mut events: Vec<&'static str> = Vec::new();
        for event in args.events {
            if !events.contains(&event) {
                events.push(event);
            }
        }
        Ok(Plan {
            url: args.url,
            rate: args.rate,
            limit,
            events,
            headers,
            concurrency: args.concurrency,
            seed: args.seed,
        })
    }
}

/// Sends the traffic, prints the summary to stdout and returns it. Ctrl-c stops early; the
/// summary still covers every request sent.
pub async fn run(args: SimulateArgs) -> anyhow::Result<Summary> {
    run_until(args, ctrl_c()).await
}

/// [`run`], stopping early when `stop` completes instead of on ctrl-c.
pub async fn run_until(
    args: SimulateArgs,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let plan = Plan::new(args)?;
    let traffic = Traffic::new(&plan.events, plan.seed)?;
    let amount = match plan.limit {
        Limit::Count(count) => format!("{count} events"),
        Limit::Duration(duration) => format!("events for {}s", duration.as_secs()),
    };
    let rate = match plan.rate {
        0 => "as fast as possible".to_owned(),
        rate => format!("at {rate}/s"),
    };
    eprintln!("sending {amount} to {} {rate}, {} in flight at most", plan.url, plan.concurrency);
    let summary = sender::send(&plan, traffic, stop).await?;
    print!("{summary}");
    Ok(summary)
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // Without our handler ctrl-c ends the process as usual; never stop early on our own.
        std::future::pending::<()>().await;
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("`{text}` is not a URL: {err}"))?;
    match url.scheme() {
        "http" => Ok(url),
        "https" => Err(format!(
            "`{text}`: this build sends plain HTTP only; use the receiver's `http://` address"
        )),
        scheme => Err(format!("`{text}`: the scheme must be `http`, not `{scheme}`")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let usage =
        || format!("`{text}` is not a duration: use a number and `s`, `m` or `h`, as `30s`");
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| usage())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(usage()),
    };
    let seconds =
        number.checked_mul(unit_seconds).ok_or_else(|| format!("`{text}` is too long"))?;
    Ok(Duration::from_secs(seconds))
}

fn parse_event_name(text: &str) -> Result<&'static str, UnknownEventName> {
    event_name(text.trim())
}

fn parse_header(text: &str) -> Result<Header, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not a header: write `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", name.trim()))?;
    // The value may be a secret: it stays out of the message.
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
    Ok(Header { name, value })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(flags: &[&str]) -> Result<SimulateArgs, String> {
        let argv = ["simulate", "--url", "http://127.0.0.1:8080/iterable/default"];
        Cli::try_parse_from(argv.iter().chain(flags)).map(|cli| cli.args).map_err(|e| e.to_string())
    }

    fn plan(flags: &[&str]) -> Result<Plan, String> {
        Plan::new(parse(flags)?).map_err(|err| err.to_string())
    }

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["30", "s", "", "1.5m", "3d", "-1s", "30 s", "1hh"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("use a number and `s`, `m` or `h`"), "{bad}: {err}");
        }
        assert!(parse_duration("99999999999999999h").unwrap_err().contains("too long"));
    }

    #[test]
    fn defaults() {
        let plan = plan(&[]).unwrap();
        assert_eq!((plan.rate, plan.limit, plan.concurrency), (50, Limit::Count(100), 16));
        assert!(plan.events.is_empty());
        assert_eq!(plan.headers[CONTENT_TYPE], "application/json");
        assert_eq!(plan.url.path(), "/iterable/default");
    }

    #[test]
    fn flags_are_read() {
        let plan = plan(&[
            "--rate=0",
            "--duration=2m",
            "--events=emailOpen,smsBounce,emailOpen",
            "--header=Authorization: OAuth2 s3cret",
            "--header",
            "X-Api-Key:k",
            "--concurrency=4",
            "--seed=7",
        ])
        .unwrap();
        assert_eq!(plan.limit, Limit::Duration(Duration::from_secs(120)));
        assert_eq!(plan.events, ["emailOpen", "smsBounce"]);
        assert_eq!(plan.headers["authorization"], "OAuth2 s3cret");
        assert_eq!(plan.headers["x-api-key"], "k");
        assert_eq!((plan.rate, plan.concurrency, plan.seed), (0, 4, Some(7)));
        assert!(!format!("{plan:?}").contains("s3cret"), "a token reached Debug: {plan:?}");
    }

    #[test]
    fn the_users_content_type_wins() {
        let plan = plan(&["--header", "content-type: text/plain"]).unwrap();
        assert_eq!(plan.headers.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(plan.headers[CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn bad_arguments_are_explained() {
        let err = plan(&["--count=5", "--duration=1m", "--concurrency=0"]).unwrap_err();
        assert_eq!(
            err,
            "invalid `simulate` arguments: give `--duration` or `--count`, not both; \
             `--concurrency` must be at least 1"
        );
        assert!(plan(&["--count=0"]).unwrap_err().contains("`--count` must be at least 1"));

        let err = parse(&["--events=emailOpen,emailUnsubscribe"]).unwrap_err();
        assert!(err.contains("unknown event name `emailUnsubscribe`"), "{err}");
        assert!(err.contains("did you mean `emailUnSubscribe`?"), "{err}");
        assert!(err.contains("known names: emailSend, emailOpen"), "{err}");

        let err = parse(&["--duration=10"]).unwrap_err();
        assert!(err.contains("`10` is not a duration"), "{err}");

        let err = parse(&["--header=Authorization OAuth2 s3cret"]).unwrap_err();
        assert!(err.contains("is not a header: write `Name: value`"), "{err}");
        // clap repeats the flag as given; our own message leaves the value out.
        let err = parse_header("X-Token: bad\u{7f}s3cret").unwrap_err();
        assert_eq!(err, "the value of header `x-token` is not a valid header value");
        assert!(parse(&["--header=Bad Name: v"]).unwrap_err().contains("not a valid header name"));

        let url = |url: &str| {
            Cli::try_parse_from(["simulate", "--url", url]).map(|_| ()).unwrap_err().to_string()
        };
        assert!(url("127.0.0.1:8080").contains("is not a URL"), "{}", url("127.0.0.1:8080"));
        assert!(url("https://example.com/iterable/default").contains("plain HTTP only"));
        assert!(url("ftp://example.com/").contains("must be `http`"));
    }
}
