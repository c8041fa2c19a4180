//! The metering rules as pure functions of usage events (`docs/metering.md` has them in
//! words, with worked examples).
//!
//! - A *session* is one lease (its start, heartbeats, release or expiry) or one report of
//!   reserved use. It keeps its machine in use from its earliest moment to its latest.
//! - A machine is *in use* for a product and a billed organization in a 10-minute UTC
//!   interval when a session of it was in use at any moment of that interval.
//! - An interval's *usage* is how many different machines were in use in it.
//! - A day's *peak* is its highest interval; its *overage* the peak beyond the most seats
//!   owned at any moment of the day. A day with overage is an *overuse*; the first three
//!   of a product in a calendar quarter are forgiven, the others are billed as
//!   term-license lines of the overage.
//!
//! Everything here depends on the set of events only, never on the order they arrive
//! in: [`Presence::add`] folds one event at a time into the same result
//! [`Presence::of`] builds from all of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// A metering interval: 10 minutes, aligned on UTC.
pub const INTERVAL_MS: i64 = 10 * 60 * 1000;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Overuses of a product forgiven per organization and calendar quarter.
pub const FORGIVEN_PER_QUARTER: usize = 3;
/// A denial followed within this long by a grant to the same person and product is not
/// a true denial (they retried and got it).
pub const RETRIED_WITHIN_MS: i64 = 10 * 60 * 1000;

/// The start of the interval holding the moment `at` (milliseconds since the epoch).
pub fn interval_of(at: i64) -> i64 {
    at.div_euclid(INTERVAL_MS) * INTERVAL_MS
}

/// The start (UTC midnight) of the day holding `at`.
pub fn day_of(at: i64) -> i64 {
    at.div_euclid(DAY_MS) * DAY_MS
}

/// The calendar quarter holding `at`, counted from year 0 (`year * 4 + quarter - 1`).
pub fn quarter_of(at: i64) -> i64 {
    let date = time::OffsetDateTime::from_unix_timestamp(at.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    i64::from(date.year()) * 4 + (i64::from(u8::from(date.month())) - 1) / 3
}

pub use crate::entitlements::usage::{Event, Kind, Source};

/// Who used a machine, and for whom: the key of a session's use in an interval.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct User {
    pub billed_org: Uuid,
    pub product: Uuid,
    pub machine: String,
    pub account: Uuid,
    pub home_org: Option<Uuid>,
    pub source: Source,
}

/// The moments a session was in use: from `from` to `to`, `to` itself excluded unless
/// the session is a single moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

impl Span {
    pub fn widened(self, other: Span) -> Span {
        Span {
            from: self.from.min(other.from),
            to: self.to.max(other.to),
        }
    }

    /// The starts of the intervals it touches.
    pub fn intervals(self) -> impl Iterator<Item = i64> {
        let last = if self.to > self.from {
            self.to - 1
        } else {
            self.from
        };
        let first = interval_of(self.from);
        let count = (interval_of(last) - first) / INTERVAL_MS + 1;
        (0..count).map(move |n| first + n * INTERVAL_MS)
    }
}

/// A session after one more of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widened {
    pub user: User,
    pub span: Span,
    /// The intervals the span touches now and did not before.
    pub new_intervals: Vec<i64>,
}

/// What `event` makes of its session, `known` as far as earlier events said: None for
/// an event that is not use (a denial, or use nobody is billed for).
pub fn widen(known: Option<&(User, Span)>, event: &Event) -> Option<Widened> {
    let billed_org = event.billed_org.filter(|_| event.is_use())?;
    let span = Span {
        from: event.at,
        to: event.until.max(event.at),
    };
    let (user, before, span) = match known {
        Some((user, before)) => (user.clone(), Some(*before), before.widened(span)),
        None => (
            User {
                billed_org,
                product: event.product,
                machine: event.machine.clone(),
                account: event.account,
                home_org: event.home_org,
                source: event.source,
            },
            None,
            span,
        ),
    };
    // A span's intervals are a run: those of the span before are one stretch of it.
    let covered = before.map(|b| {
        let last = b.intervals().last().unwrap_or(b.from);
        (interval_of(b.from), last)
    });
    let new_intervals = span
        .intervals()
        .filter(|interval| !covered.is_some_and(|(first, last)| (first..=last).contains(interval)))
        .collect();
    Some(Widened {
        user,
        span,
        new_intervals,
    })
}

/// Which machines were in use, by whom, in which intervals: every session's span, and
/// the set of (interval, user) pairs they make. Built event by event or from all events;
/// the same events give the same presence in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    pub sessions: HashMap<String, (User, Span)>,
    pub used: BTreeSet<(i64, User)>,
}

impl Presence {
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Presence {
        let mut presence = Presence::default();
        for event in events {
            presence.add(event);
        }
        presence
    }

    /// Folds one event in. Returns the (interval, user) pairs it added.
    pub fn add(&mut self, event: &Event) -> Vec<(i64, User)> {
        let Some(widened) = widen(self.sessions.get(&event.session), event) else {
            return Vec::new();
        };
        let added: Vec<(i64, User)> = widened
            .new_intervals
            .iter()
            .filter_map(|&interval| {
                let pair = (interval, widened.user.clone());
                self.used.insert(pair.clone()).then_some(pair)
            })
            .collect();
        self.sessions
            .insert(event.session.clone(), (widened.user, widened.span));
        added
    }

    /// Each interval's usage for a billed organization and product: machines in use.
    pub fn usage(&self, billed_org: Uuid, product: Uuid) -> BTreeMap<i64, i64> {
        usage_of(
            self.used
                .iter()
                .filter(|(_, user)| user.billed_org == billed_org && user.product == product)
                .map(|(interval, user)| (*interval, user.machine.as_str())),
        )
    }
}

/// Interval usage from (interval, machine) pairs: how many different machines each.
pub fn usage_of<'a>(pairs: impl IntoIterator<Item = (i64, &'a str)>) -> BTreeMap<i64, i64> {
    let machines: BTreeSet<(i64, &str)> = pairs.into_iter().collect();
    let mut usage = BTreeMap::new();
    for (interval, _) in machines {
        *usage.entry(interval).or_insert(0) += 1;
    }
    usage
}

/// Seats owned over time: `(from, seats)` steps in order of `from`, each lasting until the
/// next; none owned before the first.
pub type SeatSteps = [(i64, i64)];

/// The most seats owned at any moment of the day starting at `day`: seats bought at noon
/// cover the morning's use, and seats given up at noon still cover the afternoon's.
pub fn seats_on(steps: &SeatSteps, day: i64) -> i64 {
    let end = day + DAY_MS;
    let mut most = 0;
    let mut current = 0;
    for &(from, seats) in steps {
        if from >= end {
            break;
        }
        if from <= day {
            current = seats;
        } else {
            most = most.max(seats);
        }
    }
    most.max(current)
}

/// What a subscription said from `recorded_at` until its next terms: `seats` of each of
/// `products`, from `starts_at` until `ends_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    pub subscription: Uuid,
    pub recorded_at: i64,
    pub seats: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub products: Vec<Uuid>,
}

/// The seats of `product` the subscriptions owned over time, as [`SeatSteps`]: at each
/// moment, the sum over subscriptions of what their terms then in effect grant.
pub fn seat_steps(terms: &[Terms], product: Uuid) -> Vec<(i64, i64)> {
    let mut by_subscription: BTreeMap<Uuid, Vec<&Terms>> = BTreeMap::new();
    for t in terms {
        by_subscription.entry(t.subscription).or_default().push(t);
    }
    for history in by_subscription.values_mut() {
        history.sort_by_key(|t| t.recorded_at);
    }
    let moments: BTreeSet<i64> = terms
        .iter()
        .flat_map(|t| [t.recorded_at, t.starts_at, t.ends_at])
        .collect();
    let mut steps: Vec<(i64, i64)> = Vec::new();
    for at in moments {
        let seats: i64 = by_subscription
            .values()
            .filter_map(|history| history.iter().rev().find(|t| t.recorded_at <= at))
            .filter(|t| t.products.contains(&product) && t.starts_at <= at && at < t.ends_at)
            .map(|t| t.seats)
            .sum();
        if steps.last().map_or(0, |&(_, last)| last) != seats {
            steps.push((at, seats));
        }
    }
    steps
}

/// A day of a product's usage report for one organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day {
    pub day: i64,
    pub peak: i64,
    /// The first interval that reached the peak.
    pub peak_at: i64,
    pub seats: i64,
    pub overage: i64,
    /// An overuse among the first three of its quarter.
    pub forgiven: bool,
    /// The overage billed as a term-license line (0 when forgiven or none).
    pub billable: i64,
}

/// The days of a product's usage (`usage` by interval, as [`Presence::usage`] gives it)
/// against the seats owned. Days without use are left out. Forgiveness counts the
/// overuses of each quarter in day order, so `usage` must begin at or before the first
/// day of the earliest quarter it holds for the count to be right.
pub fn days(usage: &BTreeMap<i64, i64>, seats: &SeatSteps) -> Vec<Day> {
    let mut peaks: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (&interval, &machines) in usage {
        let entry = peaks.entry(day_of(interval)).or_insert((0, interval));
        if machines > entry.0 {
            *entry = (machines, interval);
        }
    }
    let mut overuses: HashMap<i64, usize> = HashMap::new();
    peaks
        .into_iter()
        .map(|(day, (peak, peak_at))| {
            let seats = seats_on(seats, day);
            let overage = (peak - seats).max(0);
            let forgiven = overage > 0 && {
                let count = overuses.entry(quarter_of(day)).or_insert(0);
                *count += 1;
                *count <= FORGIVEN_PER_QUARTER
            };
            Day {
                day,
                peak,
                peak_at,
                seats,
                overage,
                forgiven,
                billable: if forgiven { 0 } else { overage },
            }
        })
        .collect()
}

/// Which denials are true: those not followed, within [`RETRIED_WITHIN_MS`], by use
/// granted to the same person for the same product. `granted` holds (person, product,
/// moment) of every session's start.
pub fn true_denials(denials: &[(Uuid, Uuid, i64)], granted: &[(Uuid, Uuid, i64)]) -> Vec<bool> {
    let mut starts: HashMap<(Uuid, Uuid), Vec<i64>> = HashMap::new();
    for &(person, product, at) in granted {
        starts.entry((person, product)).or_default().push(at);
    }
    for moments in starts.values_mut() {
        moments.sort_unstable();
    }
    denials
        .iter()
        .map(|&(person, product, at)| {
            let retried = starts.get(&(person, product)).is_some_and(|moments| {
                let next = moments.partition_point(|&start| start < at);
                moments
                    .get(next)
                    .is_some_and(|&start| start <= at + RETRIED_WITHIN_MS)
            });
            !retried
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * 1000;
    const HOUR: i64 = 60 * MIN;

    /// 2026-03-31T00:00:00Z, the last day of the first quarter.
    const MARCH_31: i64 = 1_774_915_200_000;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn lease(session: &str, kind: Kind, at: i64, machine: &str, account: u128) -> Event {
        Event {
            kind,
            session: session.to_owned(),
            at,
            until: at,
            account: id(account),
            home_org: Some(id(100)),
            billed_org: Some(id(100)),
            source: Source::Own,
            product: id(1),
            machine: machine.to_owned(),
        }
    }

    fn usage(events: &[Event]) -> BTreeMap<i64, i64> {
        Presence::of(events).usage(id(100), id(1))
    }

    #[test]
    fn the_calendar_helpers_cut_on_utc_boundaries() {
        assert_eq!(interval_of(MARCH_31 + 10 * MIN), MARCH_31 + 10 * MIN);
        assert_eq!(interval_of(MARCH_31 + 10 * MIN - 1), MARCH_31);
        assert_eq!(day_of(MARCH_31 + DAY_MS - 1), MARCH_31);
        assert_eq!(quarter_of(MARCH_31 + DAY_MS - 1), 2026 * 4);
        assert_eq!(quarter_of(MARCH_31 + DAY_MS), 2026 * 4 + 1);
        assert_eq!(quarter_of(0), 1970 * 4);
        for kind in [Kind::LeaseStart, Kind::Expiry, Kind::ReservedUse] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            Source::parse("datasource_owner"),
            Some(Source::DatasourceOwner)
        );
        assert_eq!(Source::parse("borrowed"), None);
    }

    #[test]
    fn a_session_is_in_use_in_every_interval_it_touches_and_not_the_one_it_ends_on() {
        let t = MARCH_31 + 9 * HOUR;
        // 09:00:00 to 09:10:00 exactly: the 09:00 interval only.
        let exact = [
            lease("a", Kind::LeaseStart, t, "m1", 1),
            lease("a", Kind::Release, t + 10 * MIN, "m1", 1),
        ];
        assert_eq!(usage(&exact), BTreeMap::from([(t, 1)]));
        // Started exactly on 09:10: that interval.
        let on_ten = [lease("b", Kind::LeaseStart, t + 10 * MIN, "m1", 1)];
        assert_eq!(usage(&on_ten), BTreeMap::from([(t + 10 * MIN, 1)]));
        // 09:09:59.999 to 09:10:00.001: both intervals.
        let across = [
            lease("c", Kind::LeaseStart, t + 10 * MIN - 1, "m1", 1),
            lease("c", Kind::Heartbeat, t + 10 * MIN + 1, "m1", 1),
        ];
        assert_eq!(usage(&across), BTreeMap::from([(t, 1), (t + 10 * MIN, 1)]));
        // 09:05 to 09:37 by heartbeats: 09:00, 09:10, 09:20, 09:30.
        let long = [
            lease("d", Kind::LeaseStart, t + 5 * MIN, "m1", 1),
            lease("d", Kind::Heartbeat, t + 15 * MIN, "m1", 1),
            lease("d", Kind::Heartbeat, t + 25 * MIN, "m1", 1),
            lease("d", Kind::Expiry, t + 37 * MIN, "m1", 1),
        ];
        assert_eq!(
            usage(&long).keys().copied().collect::<Vec<_>>(),
            vec![t, t + 10 * MIN, t + 20 * MIN, t + 30 * MIN]
        );
    }

    #[test]
    fn machines_are_counted_once_per_product_whoever_uses_them() {
        let t = MARCH_31 + 9 * HOUR;
        let mut events = vec![
            lease("a", Kind::LeaseStart, t + MIN, "m1", 1),
            // The same machine under another person: still one machine.
            lease("b", Kind::LeaseStart, t + 2 * MIN, "m1", 2),
            lease("c", Kind::LeaseStart, t + 3 * MIN, "m2", 2),
        ];
        // A second product on m1: counted for that product, not this one.
        let mut other = lease("d", Kind::LeaseStart, t + 4 * MIN, "m1", 1);
        other.product = id(2);
        events.push(other);
        let presence = Presence::of(&events);
        assert_eq!(presence.usage(id(100), id(1)), BTreeMap::from([(t, 2)]));
        assert_eq!(presence.usage(id(100), id(2)), BTreeMap::from([(t, 1)]));
        // Another organization billed for the same machine counts it for itself.
        let mut elsewhere = lease("e", Kind::LeaseStart, t + 5 * MIN, "m1", 3);
        elsewhere.billed_org = Some(id(200));
        elsewhere.source = Source::DatasourceOwner;
        let presence = Presence::of(events.iter().chain([&elsewhere]));
        assert_eq!(presence.usage(id(100), id(1)), BTreeMap::from([(t, 2)]));
        assert_eq!(presence.usage(id(200), id(1)), BTreeMap::from([(t, 1)]));
    }

    #[test]
    fn a_lease_across_midnight_and_the_quarter_counts_on_both_days() {
        // 23:55 on 31 March to 00:12 on 1 April.
        let start = MARCH_31 + DAY_MS - 5 * MIN;
        let events = [
            lease("a", Kind::LeaseStart, start, "m1", 1),
            lease("a", Kind::Heartbeat, start + 10 * MIN, "m1", 1),
            lease("a", Kind::Release, start + 17 * MIN, "m1", 1),
        ];
        let usage = usage(&events);
        assert_eq!(
            usage,
            BTreeMap::from([
                (MARCH_31 + DAY_MS - 10 * MIN, 1),
                (MARCH_31 + DAY_MS, 1),
                (MARCH_31 + DAY_MS + 10 * MIN, 1),
            ])
        );
        let report = days(&usage, &[(0, 0)]);
        assert_eq!(
            report.iter().map(|d| (d.day, d.peak)).collect::<Vec<_>>(),
            vec![(MARCH_31, 1), (MARCH_31 + DAY_MS, 1)]
        );
        // Each day is the first overuse of its own quarter: both forgiven.
        assert!(report.iter().all(|d| d.overage == 1 && d.forgiven));
    }

    #[test]
    fn a_late_offline_upload_fills_the_intervals_it_covers() {
        let t = MARCH_31 + 9 * HOUR;
        let mut reserved = lease("report-1", Kind::ReservedUse, t + 2 * MIN, "m9", 1);
        reserved.until = t + 31 * MIN;
        reserved.source = Source::Reserved;
        let online = lease("a", Kind::LeaseStart, t + 12 * MIN, "m1", 2);
        let mut presence = Presence::of([&online]);
        assert_eq!(
            presence.usage(id(100), id(1)),
            BTreeMap::from([(t + 10 * MIN, 1)])
        );
        // Uploaded days later, it corrects the intervals it touches.
        let added = presence.add(&reserved);
        assert_eq!(added.len(), 4);
        assert_eq!(
            presence.usage(id(100), id(1)),
            BTreeMap::from([
                (t, 1),
                (t + 10 * MIN, 2),
                (t + 20 * MIN, 1),
                (t + 30 * MIN, 1)
            ])
        );
        // The same upload again changes nothing.
        assert!(presence.add(&reserved).is_empty());
        assert_eq!(presence, Presence::of([&online, &reserved]));
    }

    #[test]
    fn overage_is_the_peak_beyond_the_days_seats_and_three_a_quarter_are_forgiven() {
        // Five days in a row at 9:00, each with 4 machines against 2 seats, then a day
        // within the seats; then the first day of the next quarter over again.
        let mut usage = BTreeMap::new();
        let first = MARCH_31 - 5 * DAY_MS;
        for day in 0..5 {
            usage.insert(first + day * DAY_MS + 9 * HOUR, 4);
            usage.insert(first + day * DAY_MS + 10 * HOUR, 1);
        }
        usage.insert(MARCH_31 + 9 * HOUR, 2);
        usage.insert(MARCH_31 + DAY_MS + 9 * HOUR, 5);
        let report = days(&usage, &[(0, 2)]);
        let lines: Vec<(i64, i64, bool, i64)> = report
            .iter()
            .map(|d| (d.peak, d.overage, d.forgiven, d.billable))
            .collect();
        assert_eq!(
            lines,
            vec![
                (4, 2, true, 0),
                (4, 2, true, 0),
                (4, 2, true, 0),
                (4, 2, false, 2),
                (4, 2, false, 2),
                (2, 0, false, 0),
                // A new quarter: forgiven again.
                (5, 3, true, 0),
            ]
        );
        assert_eq!(report[0].peak_at, first + 9 * HOUR);
    }

    #[test]
    fn a_day_counts_the_most_seats_owned_at_any_moment_of_it() {
        let day = MARCH_31;
        // 2 seats, 10 from noon: the day has 10.
        let steps = [(0, 2), (day + 12 * HOUR, 10)];
        assert_eq!(seats_on(&steps, day), 10);
        assert_eq!(seats_on(&steps, day - DAY_MS), 2);
        assert_eq!(seats_on(&steps, day + DAY_MS), 10);
        // 10 seats down to 2 at noon: still 10 that day, 2 the next.
        let steps = [(0, 10), (day + 12 * HOUR, 2)];
        assert_eq!(seats_on(&steps, day), 10);
        assert_eq!(seats_on(&steps, day + DAY_MS), 2);
        // Nothing owned before the first step; a change at midnight belongs to its day.
        assert_eq!(seats_on(&[(day, 3)], day - DAY_MS), 0);
        assert_eq!(seats_on(&[(day, 3)], day), 3);
        // Morning peak of 6 with 2 seats, 10 bought at noon: no overage.
        let usage = BTreeMap::from([(day + 9 * HOUR, 6)]);
        let report = days(&usage, &[(0, 2), (day + 12 * HOUR, 10)]);
        assert_eq!((report[0].seats, report[0].overage), (10, 0));
    }

    #[test]
    fn seats_follow_what_the_subscriptions_said_at_each_moment() {
        let day = MARCH_31;
        let terms =
            |subscription, recorded_at, seats, starts_at, ends_at, products: &[u128]| Terms {
                subscription: id(subscription),
                recorded_at,
                seats,
                starts_at,
                ends_at,
                products: products.iter().map(|&p| id(p)).collect(),
            };
        let history = [
            // 10 seats of products 1 and 2 from the start of the day before...
            terms(
                7,
                day - DAY_MS,
                10,
                day - DAY_MS,
                day + 30 * DAY_MS,
                &[1, 2],
            ),
            // ...changed at noon to 20 seats of product 1 only.
            terms(
                7,
                day + 12 * HOUR,
                20,
                day - DAY_MS,
                day + 30 * DAY_MS,
                &[1],
            ),
            // Another subscription of 3 seats of product 1, ended at 18:00.
            terms(8, day - DAY_MS, 3, day - DAY_MS, day + DAY_MS, &[1]),
            terms(8, day + 18 * HOUR, 3, day - DAY_MS, day + 18 * HOUR, &[1]),
        ];
        assert_eq!(
            seat_steps(&history, id(1)),
            vec![
                (day - DAY_MS, 13),
                (day + 12 * HOUR, 23),
                (day + 18 * HOUR, 20),
                (day + 30 * DAY_MS, 0)
            ]
        );
        assert_eq!(
            seat_steps(&history, id(2)),
            vec![(day - DAY_MS, 10), (day + 12 * HOUR, 0)]
        );
        // The day of the change counts its most: 23 of product 1, 10 of product 2.
        assert_eq!(seats_on(&seat_steps(&history, id(1)), day), 23);
        assert_eq!(seats_on(&seat_steps(&history, id(1)), day + DAY_MS), 20);
        assert_eq!(seats_on(&seat_steps(&history, id(2)), day), 10);
        assert_eq!(seats_on(&seat_steps(&history, id(2)), day + DAY_MS), 0);
    }

    #[test]
    fn a_denial_retried_and_granted_within_ten_minutes_is_not_true() {
        let t = MARCH_31;
        let denials = [
            (id(1), id(1), t),
            (id(1), id(1), t + HOUR),
            (id(2), id(1), t),
            (id(1), id(2), t),
        ];
        let granted = [
            (id(1), id(1), t + 10 * MIN),
            (id(1), id(1), t + HOUR + 10 * MIN + 1),
            (id(2), id(1), t - MIN),
            (id(1), id(1), t - 5 * MIN),
        ];
        assert_eq!(
            true_denials(&denials, &granted),
            vec![false, true, true, true]
        );
    }

    mod property {
        use proptest::prelude::*;

        use super::*;

        /// A random event of one of a few sessions, machines, people, products and
        /// organizations, over two days around the end of a quarter.
        fn event() -> impl Strategy<Value = Event> {
            (0u8..6, 0u8..12, 0i64..(2 * DAY_MS), 0i64..(3 * HOUR)).prop_map(
                |(kind, session, at, length)| {
                    let kind = Kind::ALL[usize::from(kind)];
                    let at = MARCH_31 - DAY_MS / 2 + at;
                    // A session's person, machine, product and payer are fixed, as
                    // they are for a lease or a report; only its moments vary. Sessions
                    // share machines across people, products and payers.
                    let n = u128::from(session);
                    Event {
                        kind,
                        session: format!("s{session}"),
                        at,
                        until: if kind == Kind::ReservedUse {
                            at + length
                        } else {
                            at
                        },
                        account: id(n % 3),
                        home_org: Some(id(100)),
                        billed_org: (kind != Kind::Denial).then(|| id(100 + (n / 6) % 2)),
                        source: Source::Own,
                        product: id(1 + (n / 4) % 2),
                        machine: format!("m{}", n % 4),
                    }
                },
            )
        }

        /// The rules as written, from scratch: each session's span from its earliest to
        /// its latest moment, and every interval it touches.
        fn by_definition(events: &[Event]) -> BTreeSet<(i64, User)> {
            let mut spans: BTreeMap<&str, (User, i64, i64)> = BTreeMap::new();
            for e in events
                .iter()
                .filter(|e| e.is_use() && e.billed_org.is_some())
            {
                let user = User {
                    billed_org: e.billed_org.unwrap_or_default(),
                    product: e.product,
                    machine: e.machine.clone(),
                    account: e.account,
                    home_org: e.home_org,
                    source: e.source,
                };
                let span = spans.entry(&e.session).or_insert((user, e.at, e.until));
                span.1 = span.1.min(e.at);
                span.2 = span.2.max(e.until);
            }
            let mut used = BTreeSet::new();
            for (user, from, to) in spans.into_values() {
                let mut interval = interval_of(from);
                let last = if to > from { to - 1 } else { from };
                while interval <= last {
                    used.insert((interval, user.clone()));
                    interval += INTERVAL_MS;
                }
            }
            used
        }

        proptest! {
            #[test]
            fn any_arrival_order_gives_what_recomputation_gives(
                (events, order) in prop::collection::vec(event(), 0..60)
                    .prop_flat_map(|events| {
                        let n = events.len();
                        (Just(events), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
                    })
            ) {
                let batch = Presence::of(&events);
                let mut incremental = Presence::default();
                let mut written = BTreeSet::new();
                for &i in &order {
                    for pair in incremental.add(&events[i]) {
                        prop_assert!(written.insert(pair), "a pair written twice");
                    }
                }
                prop_assert_eq!(&incremental.used, &batch.used);
                prop_assert_eq!(&written, &batch.used);
                prop_assert_eq!(&batch.used, &by_definition(&events));
                for org in [id(100), id(101)] {
                    for product in [id(1), id(2)] {
                        let usage = batch.usage(org, product);
                        prop_assert_eq!(
                            days(&usage, &[(0, 1)]),
                            days(&incremental.usage(org, product), &[(0, 1)])
                        );
                    }
                }
            }
        }
    }
}
