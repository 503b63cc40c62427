//! Dispatch stage, retry policy: what one delivery attempt's result means, and when to try again.
//!
//! Pure: policy is data ([`RetryPolicy`]), the clock is a parameter (`now`, `age`) and jitter
//! comes from an injected RNG, so every decision is reproducible in tests. Invariants:
//!
//! - Every attempt is classified into an [`Outcome`]; every non-delivered outcome carries a short,
//!   sanitized reason (status plus at most [`SNIPPET_MAX_CHARS`] chars of body) that ends up in
//!   logs and dead letters.
//! - Transient failures (connect errors, timeouts, 408, 429, every 5xx) are retried;
//!   everything else gives up at once. Redirects are not followed, so a 3xx is a misconfiguration.
//! - A retry delay is never zero, never above `max_delay` unless the server's `Retry-After` asked
//!   for more, and never earlier than `Retry-After` (clamped to `max_retry_after`, so a hostile or
//!   buggy server cannot park a delivery for a year).
//! - A delivery dies after `max_attempts` attempts, or when the next attempt would fall past
//!   `max_age` since it was first enqueued.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use rand::RngExt as _;

use crate::config::RetryConfig;

/// Longest body excerpt kept in a reason, in chars: enough for Slack's `channel_not_found` or a
/// GitHub `{"message": ...}`, short enough for one log line.
pub const SNIPPET_MAX_CHARS: usize = 120;

/// The smallest delay ever returned, so that a zero `initial`/`max_delay` cannot spin a worker.
const MIN_DELAY: Duration = Duration::from_millis(1);

/// When and how often to retry a target. Built from `[retry]` (or a target's override).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Backoff base for the first retry; doubles with every further attempt.
    pub initial: Duration,
    /// Cap on the backoff (before a `Retry-After` is taken into account).
    pub max_delay: Duration,
    /// Attempts in total, the first one included; the delivery dies after the last.
    pub max_attempts: u32,
    /// How long after enqueueing a delivery may still be attempted.
    pub max_age: Duration,
    /// Upper bound on how long a server's `Retry-After` is honoured.
    pub max_retry_after: Duration,
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        // `timeout` is deliberately not here: it bounds one call and belongs to the target.
        RetryPolicy {
            initial: c.initial,
            max_delay: c.max_delay,
            max_attempts: c.max_attempts,
            max_age: c.max_age,
            max_retry_after: c.max_retry_after,
        }
    }
}

/// The classified result of one delivery attempt; what every target returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target accepted it (2xx).
    Delivered { status: u16 },
    /// A transient failure; `retry_after` is the server's `Retry-After`, if it sent a valid one.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A permanent failure: retrying would give the same answer.
    GiveUp { reason: String },
}

impl Outcome {
    /// A fixed, low-cardinality label for metrics: `delivered`, `retry` or `give_up`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::GiveUp { .. } => "give_up",
        }
    }
}

/// A failure below HTTP: no status to classify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// DNS, TCP or TLS could not establish a connection.
    Connect,
    /// The call did not finish within the target's timeout.
    Timeout,
    /// Anything else (connection reset mid-response, malformed response, ...).
    Other,
}

/// What to do with a delivery after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reschedule it this far from now.
    RetryAfter(Duration),
    /// Move it to the dead letters, with the reason shown to the operator.
    Dead { reason: String },
}

/// Classify an HTTP answer.
///
/// `retry_after` is the raw `Retry-After` header, read relative to `now` when it is a date.
/// `body_snippet` is (the start of) the response body; it is sanitized and cut here, so targets
/// may pass what they read as is.
pub fn classify_status(
    status: u16,
    retry_after: Option<&http::HeaderValue>,
    now: SystemTime,
    body_snippet: &str,
) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { status },
        // Every 5xx, 501 included: a 501 can come from a proxy or a half-deployed receiver and go
        // away, and one that stays costs only the bounded retries before the dead letter.
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: reason(status, body_snippet),
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        // Redirects are not followed: an incoming-webhook or API URL that redirects is a
        // misconfiguration, and following it could leak the request (and its token) elsewhere.
        300..=399 => Outcome::GiveUp {
            reason: format!("http {status}: unexpected redirect"),
        },
        100..=199 => Outcome::GiveUp {
            reason: format!("http {status}: unexpected informational response"),
        },
        400..=499 => Outcome::GiveUp {
            reason: reason(status, body_snippet),
        },
        _ => Outcome::GiveUp {
            reason: format!("http {status}: invalid status"),
        },
    }
}

/// Classify a failure that produced no HTTP status. All are transient.
pub fn classify_transport(kind: TransportError) -> Outcome {
    let reason = match kind {
        TransportError::Connect => "connect error",
        TransportError::Timeout => "timeout",
        TransportError::Other => "transport error",
    };
    Outcome::Retry {
        reason: reason.to_string(),
        retry_after: None,
    }
}

/// Decide what follows an attempt. `attempts_made` counts attempts so far, this one included;
/// `age` is the time since the delivery was enqueued. `None` for a delivered outcome.
pub fn decide(
    policy: &RetryPolicy,
    attempts_made: u32,
    age: Duration,
    outcome: &Outcome,
    rng: &mut impl rand::Rng,
) -> Option<Decision> {
    match outcome {
        Outcome::Delivered { .. } => None,
        Outcome::GiveUp { reason } => Some(Decision::Dead {
            reason: reason.clone(),
        }),
        Outcome::Retry {
            reason,
            retry_after,
        } => {
            if attempts_made >= policy.max_attempts {
                return Some(Decision::Dead {
                    reason: format!("gave up after {attempts_made} attempts: {reason}"),
                });
            }
            let delay = next_delay(policy, attempts_made, *retry_after, rng);
            // Checked before scheduling rather than after the next failure: a retry that would
            // run past max_age is not worth holding the delivery out of the dead letters for.
            if age.saturating_add(delay) > policy.max_age {
                let age = humantime::format_duration(Duration::from_secs(age.as_secs()));
                return Some(Decision::Dead {
                    reason: format!("gave up after {age}: {reason}"),
                });
            }
            Some(Decision::RetryAfter(delay))
        }
    }
}

/// The delay before the next attempt.
///
/// Exponential backoff `initial * 2^(attempts_made - 1)`, capped at `max_delay`, then jittered
/// uniformly into `[base/2, base]`: spread enough that retries of one outage do not arrive in
/// lockstep, yet never near zero (unlike full jitter), so a struggling target gets real rest.
/// A `Retry-After` (clamped to `max_retry_after`) is a floor: never earlier than the server asked.
pub fn next_delay(
    policy: &RetryPolicy,
    attempts_made: u32,
    retry_after: Option<Duration>,
    rng: &mut impl rand::Rng,
) -> Duration {
    let base = backoff_base(policy, attempts_made);
    // Nanosecond resolution keeps base/2 <= d <= base exact for any base; u64 nanos cover 584
    // years, far beyond any sane max_delay, and saturate rather than wrap beyond that.
    let hi = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
    let lo = hi - hi / 2; // ceil(hi / 2)
    let jittered = Duration::from_nanos(rng.random_range(lo..=hi));
    match retry_after {
        Some(asked) => jittered.max(asked.min(policy.max_retry_after)),
        None => jittered,
    }
}

/// `initial * 2^(attempts_made - 1)`, capped at `max_delay`, floored at [`MIN_DELAY`].
fn backoff_base(policy: &RetryPolicy, attempts_made: u32) -> Duration {
    let doublings = attempts_made.saturating_sub(1);
    // checked_shl fails from 2^32 on, checked_mul on Duration overflow: both mean "past the cap".
    let base = 1u32
        .checked_shl(doublings)
        .and_then(|factor| policy.initial.checked_mul(factor))
        .map_or(policy.max_delay, |d| d.min(policy.max_delay));
    base.max(MIN_DELAY)
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past means
/// "now" (zero). Anything else is ignored (`None`): a broken header must not stall a delivery.
fn parse_retry_after(value: &http::HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too big for u64: the server asked for "forever"; the policy clamps it.
        return Some(s.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `http 404` or `http 404: channel_not_found`.
fn reason(status: u16, body: &str) -> String {
    let mut s = format!("http {status}");
    let snippet = sanitize_snippet(body);
    if !snippet.is_empty() {
        let _ = write!(s, ": {snippet}");
    }
    s
}

/// One line of at most [`SNIPPET_MAX_CHARS`] chars: control chars and whitespace runs become
/// one space (a body must not forge log lines), and a cut is marked with `…`.
fn sanitize_snippet(body: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut pending_space = false;
    let mut cut = false;
    for c in body.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = chars > 0;
            continue;
        }
        let needed = if pending_space { 2 } else { 1 };
        if chars + needed > SNIPPET_MAX_CHARS {
            cut = true;
            break;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    if cut {
        // Make room for the marker, then drop a dangling space.
        while chars > SNIPPET_MAX_CHARS - 1 {
            out.pop();
            chars -= 1;
        }
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use rand::SeedableRng as _;
    use rand::rngs::Xoshiro256PlusPlus;

    use super::*;

    // Xoshiro256++ rather than StdRng: its output is specified, so pinned values survive rand
    // upgrades that swap StdRng's algorithm.
    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(seed)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            max_retry_after: Duration::from_secs(3600),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn now() -> SystemTime {
        // Thu, 01 Jan 2026 00:00:00 GMT
        SystemTime::UNIX_EPOCH + secs(1_767_225_600)
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn from_config() {
        let c = RetryConfig {
            timeout: secs(15),
            initial: secs(2),
            max_delay: secs(60),
            max_attempts: 5,
            max_age: secs(3600),
            max_retry_after: secs(300),
        };
        assert_eq!(
            RetryPolicy::from(&c),
            RetryPolicy {
                initial: secs(2),
                max_delay: secs(60),
                max_attempts: 5,
                max_age: secs(3600),
                max_retry_after: secs(300),
            }
        );
    }

    #[test]
    fn delays_are_pinned_for_a_fixed_seed() {
        let mut r = rng(42);
        let got: Vec<Duration> = (1..=5)
            .map(|n| next_delay(&policy(), n, None, &mut r))
            .collect();
        assert_eq!(
            got,
            [
                Duration::new(0, 907_152_573),
                Duration::new(1, 318_821_040),
                Duration::new(3, 967_788_337),
                Duration::new(6, 804_542_393),
                Duration::new(14, 348_035_918),
            ]
        );
    }

    #[test]
    fn delays_stay_within_half_base_and_base() {
        let p = policy();
        for seed in 0..500 {
            let mut r = rng(seed);
            for n in 1..=15u32 {
                let base = secs(1u64 << (n - 1)).min(p.max_delay);
                let d = next_delay(&p, n, None, &mut r);
                assert!(
                    d >= base / 2 && d <= base,
                    "seed {seed} attempt {n}: {d:?} vs {base:?}"
                );
                assert!(d <= p.max_delay);
                assert!(d > Duration::ZERO);
            }
        }
    }

    #[test]
    fn odd_nanosecond_bases_keep_the_bounds() {
        let p = RetryPolicy {
            initial: Duration::from_nanos(3),
            ..policy()
        };
        // 3ns is below the floor; the floor itself is the base.
        for seed in 0..50 {
            let d = next_delay(&p, 1, None, &mut rng(seed));
            assert!(d >= MIN_DELAY / 2 && d <= MIN_DELAY, "{d:?}");
        }
        let p = RetryPolicy {
            initial: Duration::from_nanos(1_000_001),
            ..policy()
        };
        for seed in 0..50 {
            let d = next_delay(&p, 1, None, &mut rng(seed));
            assert!(d >= Duration::from_nanos(500_001) && d <= Duration::from_nanos(1_000_001));
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = policy();
        let bases: Vec<u64> = (1..=12).map(|n| backoff_base(&p, n).as_secs()).collect();
        assert_eq!(bases, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        // attempt 0 (not meaningful, but must not underflow) behaves like attempt 1.
        assert_eq!(backoff_base(&p, 0), secs(1));
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy {
            initial: Duration::MAX / 4,
            max_delay: Duration::MAX,
            ..policy()
        };
        for n in [31, 32, 33, 64, 65, 1000, u32::MAX - 1, u32::MAX] {
            assert_eq!(backoff_base(&policy(), n), secs(600), "attempt {n}");
            assert_eq!(backoff_base(&p, n), Duration::MAX, "attempt {n}");
            let d = next_delay(&policy(), n, None, &mut rng(1));
            assert!(d >= secs(300) && d <= secs(600));
            // Saturates at u64::MAX nanos instead of panicking.
            let d = next_delay(&p, n, None, &mut rng(1));
            assert!(d <= Duration::from_nanos(u64::MAX));
        }
    }

    #[test]
    fn zero_policy_is_never_zero() {
        let p = RetryPolicy {
            initial: Duration::ZERO,
            max_delay: Duration::ZERO,
            ..policy()
        };
        for seed in 0..50 {
            assert!(next_delay(&p, 3, None, &mut rng(seed)) > Duration::ZERO);
        }
    }

    #[test]
    fn retry_after_is_a_floor_clamped_to_max_retry_after() {
        let p = policy();
        // Attempt 1: jitter lands in [0.5s, 1s]; the server asked for 30s.
        assert_eq!(next_delay(&p, 1, Some(secs(30)), &mut rng(7)), secs(30));
        // Asked for less than the backoff: the backoff wins (same seed, same jitter).
        let plain = next_delay(&p, 10, None, &mut rng(7));
        assert_eq!(next_delay(&p, 10, Some(secs(1)), &mut rng(7)), plain);
        // Asked for more than max_delay but within max_retry_after: honoured.
        assert_eq!(
            next_delay(&p, 12, Some(secs(1800)), &mut rng(7)),
            secs(1800)
        );
        // Asked for a day: clamped to max_retry_after.
        assert_eq!(
            next_delay(&p, 1, Some(secs(86_400)), &mut rng(7)),
            secs(3600)
        );
        assert_eq!(
            next_delay(&p, 1, Some(Duration::MAX), &mut rng(7)),
            secs(3600)
        );
    }

    fn retry_after_of(value: &str) -> Option<Duration> {
        match classify_status(429, Some(&hv(value)), now(), "") {
            Outcome::Retry { retry_after, .. } => retry_after,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_of("120"), Some(secs(120)));
        assert_eq!(retry_after_of(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            retry_after_of("99999999999999999999999"),
            Some(Duration::MAX)
        );
        assert_eq!(
            retry_after_of("Thu, 01 Jan 2026 00:01:30 GMT"),
            Some(secs(90))
        );
        assert_eq!(
            retry_after_of("Wed, 31 Dec 2025 23:00:00 GMT"),
            Some(Duration::ZERO),
            "past"
        );
        assert_eq!(
            retry_after_of("Thu, 01 Jan 2026 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        for garbage in [
            "",
            "soon",
            "-5",
            "1.5",
            "12s",
            "Thu, 32 Jan 2026 00:00:00 GMT",
        ] {
            assert_eq!(retry_after_of(garbage), None, "{garbage:?}");
        }
        // Not visible ASCII at all.
        let odd = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert_eq!(parse_retry_after(&odd, now()), None);
    }

    fn class(status: u16, body: &str) -> Outcome {
        classify_status(status, None, now(), body)
    }

    fn retry(reason: &str) -> Outcome {
        Outcome::Retry {
            reason: reason.into(),
            retry_after: None,
        }
    }

    fn give_up(reason: &str) -> Outcome {
        Outcome::GiveUp {
            reason: reason.into(),
        }
    }

    #[test]
    fn classify_each_status_class() {
        assert_eq!(class(200, "ok"), Outcome::Delivered { status: 200 });
        assert_eq!(class(201, ""), Outcome::Delivered { status: 201 });
        assert_eq!(class(204, ""), Outcome::Delivered { status: 204 });
        assert_eq!(
            class(301, "moved"),
            give_up("http 301: unexpected redirect")
        );
        assert_eq!(
            class(101, ""),
            give_up("http 101: unexpected informational response")
        );
        assert_eq!(
            class(400, "invalid_payload"),
            give_up("http 400: invalid_payload")
        );
        assert_eq!(class(401, ""), give_up("http 401"));
        assert_eq!(
            class(404, "channel_not_found"),
            give_up("http 404: channel_not_found")
        );
        assert_eq!(class(408, ""), retry("http 408"));
        assert_eq!(
            class(410, "channel_is_archived"),
            give_up("http 410: channel_is_archived")
        );
        assert_eq!(
            class(422, "{\"message\": \"bad ref\"}"),
            give_up("http 422: {\"message\": \"bad ref\"}")
        );
        assert_eq!(class(429, "rate_limited"), retry("http 429: rate_limited"));
        assert_eq!(class(500, "oops"), retry("http 500: oops"));
        assert_eq!(class(501, ""), retry("http 501"));
        assert_eq!(class(502, ""), retry("http 502"));
        assert_eq!(class(503, "\n"), retry("http 503"));
        assert_eq!(class(599, ""), retry("http 599"));
        assert_eq!(class(600, ""), give_up("http 600: invalid status"));
        assert_eq!(class(0, ""), give_up("http 0: invalid status"));
    }

    #[test]
    fn retry_after_travels_with_retries() {
        let o = classify_status(503, Some(&hv("7")), now(), "");
        assert_eq!(
            o,
            Outcome::Retry {
                reason: "http 503".into(),
                retry_after: Some(secs(7)),
            }
        );
    }

    #[test]
    fn body_snippets_are_one_short_line() {
        assert_eq!(
            class(500, "  line one\r\n\tline\x1b[31m two  \n"),
            retry("http 500: line one line [31m two")
        );
        let long = "x".repeat(500);
        let Outcome::Retry { reason, .. } = class(500, &long) else {
            panic!()
        };
        let snippet = reason.strip_prefix("http 500: ").unwrap();
        assert_eq!(snippet.chars().count(), SNIPPET_MAX_CHARS);
        assert!(snippet.ends_with('…'));
        // Exactly at the limit: kept whole, no marker.
        let exact = "é".repeat(SNIPPET_MAX_CHARS);
        assert_eq!(sanitize_snippet(&exact), exact);
        // A cut right after a space does not leave "word …".
        let spaced = format!("{} {}", "a".repeat(118), "b".repeat(10));
        let s = sanitize_snippet(&spaced);
        assert_eq!(s, format!("{}…", "a".repeat(118)));
        assert!(s.chars().count() <= SNIPPET_MAX_CHARS);
    }

    #[test]
    fn transport_errors_retry() {
        assert_eq!(
            classify_transport(TransportError::Connect),
            retry("connect error")
        );
        assert_eq!(
            classify_transport(TransportError::Timeout),
            retry("timeout")
        );
        assert_eq!(
            classify_transport(TransportError::Other),
            retry("transport error")
        );
    }

    #[test]
    fn labels() {
        assert_eq!(class(200, "").label(), "delivered");
        assert_eq!(class(503, "").label(), "retry");
        assert_eq!(class(404, "").label(), "give_up");
    }

    #[test]
    fn decide_delivered_is_none() {
        assert_eq!(
            decide(&policy(), 1, secs(0), &class(200, ""), &mut rng(1)),
            None
        );
    }

    #[test]
    fn decide_give_up_is_dead_at_once_with_reason() {
        let d = decide(
            &policy(),
            1,
            secs(0),
            &class(404, "channel_not_found"),
            &mut rng(1),
        );
        assert_eq!(
            d,
            Some(Decision::Dead {
                reason: "http 404: channel_not_found".into()
            })
        );
    }

    #[test]
    fn decide_retries_until_max_attempts() {
        let p = policy();
        let o = class(503, "busy");
        for n in 1..p.max_attempts {
            match decide(&p, n, secs(0), &o, &mut rng(n.into())) {
                Some(Decision::RetryAfter(d)) => {
                    assert_eq!(d, next_delay(&p, n, None, &mut rng(n.into())));
                }
                other => panic!("attempt {n}: {other:?}"),
            }
        }
        assert_eq!(
            decide(&p, 12, secs(0), &o, &mut rng(1)),
            Some(Decision::Dead {
                reason: "gave up after 12 attempts: http 503: busy".into()
            })
        );
        assert!(matches!(
            decide(&p, 13, secs(0), &o, &mut rng(1)),
            Some(Decision::Dead { .. })
        ));
    }

    #[test]
    fn decide_dead_when_next_attempt_passes_max_age() {
        let p = RetryPolicy {
            max_age: secs(3600),
            ..policy()
        };
        let o = classify_transport(TransportError::Timeout);
        // Attempt 10: base 512s, delay in [256s, 512s]; 56m40.9s old + that > 1h. The age in the
        // reason is cut to whole seconds.
        assert_eq!(
            decide(&p, 10, Duration::from_millis(3_400_900), &o, &mut rng(3)),
            Some(Decision::Dead {
                reason: "gave up after 56m 40s: timeout".into()
            })
        );
        // Same age, an early attempt with a short delay still fits.
        assert!(matches!(
            decide(&p, 2, secs(3000), &o, &mut rng(3)),
            Some(Decision::RetryAfter(_))
        ));
        // A Retry-After beyond the remaining age kills it too.
        let o = Outcome::Retry {
            reason: "http 429".into(),
            retry_after: Some(secs(1200)),
        };
        assert_eq!(
            decide(&p, 1, secs(3000), &o, &mut rng(3)),
            Some(Decision::Dead {
                reason: "gave up after 50m: http 429".into()
            })
        );
    }

    #[test]
    fn decide_with_zero_max_attempts_never_retries() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert!(matches!(
            decide(&p, 1, secs(0), &class(500, ""), &mut rng(1)),
            Some(Decision::Dead { .. })
        ));
    }
}
