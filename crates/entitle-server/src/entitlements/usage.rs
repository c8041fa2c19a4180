//! Usage events: entitlements append one for every lease taken, renewed, released or
//! lapsed, every reserved use reported and every request refused, in the transaction that
//! made the change. Metering folds them into usage (`crate::metering`); each event also
//! enters the queue of events not folded yet.

use uuid::Uuid;

use crate::db::{DbError, Executor};

/// What an event says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    LeaseStart,
    Heartbeat,
    Release,
    Expiry,
    /// A client's report that a reserved license was in use from `at` to `until`.
    ReservedUse,
    /// A request refused: no entitlement, or no seat.
    Denial,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LeaseStart => "lease_start",
            Kind::Heartbeat => "heartbeat",
            Kind::Release => "release",
            Kind::Expiry => "expiry",
            Kind::ReservedUse => "reserved_use",
            Kind::Denial => "denial",
        }
    }

    pub const ALL: [Kind; 6] = [
        Kind::LeaseStart,
        Kind::Heartbeat,
        Kind::Release,
        Kind::Expiry,
        Kind::ReservedUse,
        Kind::Denial,
    ];

    pub fn parse(value: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

/// Whose licensing paid for a use: the person's own organization's, a data source
/// owner's (for an external user), or a reserved license checked out by an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Own,
    DatasourceOwner,
    Reserved,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Own => "own",
            Source::DatasourceOwner => "datasource_owner",
            Source::Reserved => "reserved",
        }
    }

    pub fn parse(value: &str) -> Option<Source> {
        [Source::Own, Source::DatasourceOwner, Source::Reserved]
            .into_iter()
            .find(|source| source.as_str() == value)
    }
}

/// One usage event, as far as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// The lease's id, or the reserved-use report's own id: the events of one session.
    pub session: String,
    pub at: i64,
    /// The end of a reported period of reserved use; `at` for every other event.
    pub until: i64,
    pub account: Uuid,
    pub home_org: Option<Uuid>,
    /// None for a denial that named no payer.
    pub billed_org: Option<Uuid>,
    pub source: Source,
    pub product: Uuid,
    pub machine: String,
}

impl Event {
    /// Whether it counts as use: everything but a denial.
    pub fn is_use(&self) -> bool {
        self.kind != Kind::Denial
    }
}

/// An event to record: what the rules read, and what the reports show beside it.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: Event,
    pub version: String,
    pub datasource: Option<Uuid>,
    pub detail: Option<String>,
}

/// Appends `events` and queues them for folding.
pub async fn record(ex: &mut impl Executor, events: &[NewEvent]) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let recorded_at = crate::db::now_ms();
    let rows: Vec<(Uuid, &NewEvent)> = events.iter().map(|e| (Uuid::now_v7(), e)).collect();
    crate::insert_many!(
        ex,
        "INSERT INTO usage_events (id, kind, session, at, until_at, account_id, home_org_id, \
         billed_org_id, source, product_id, version, machine, datasource_id, detail, recorded_at)",
        "",
        rows,
        15,
        |query, row| query
            .bind(row.0)
            .bind(row.1.event.kind.as_str())
            .bind(&row.1.event.session)
            .bind(row.1.event.at)
            .bind(row.1.event.until)
            .bind(row.1.event.account)
            .bind(row.1.event.home_org)
            .bind(row.1.event.billed_org)
            .bind(row.1.event.source.as_str())
            .bind(row.1.event.product)
            .bind(&row.1.version)
            .bind(&row.1.event.machine)
            .bind(row.1.datasource)
            .bind(&row.1.detail)
            .bind(recorded_at)
    )?;
    crate::insert_many!(
        ex,
        "INSERT INTO usage_unfolded (event_id)",
        "",
        rows,
        1,
        |query, row| query.bind(row.0)
    )?;
    Ok(())
}
