//! Benchmark: user management at scale through the HTTP API of a real `entitled`
//! process. Stages and commits 1,000-row CSV files (in an empty organization and again
//! once it holds 100,000 users), then measures member-list and search latency at
//! 100,000 users in one organization: member lists, SCIM lookups, a 1,000-operation
//! SCIM /Bulk, and SCIM Groups (one of 100,000 members, changed one person at a time,
//! and mapped to a role).
//!
//! Run with `bench/users.sh` (SQLite, then PostgreSQL). Arguments: the `entitled`
//! binary and optionally a PostgreSQL URL (`ENTITLE_DATABASE_URL` of the server).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

mod common;

use common::{median, PASSWORD};
use entitle_proto::{ImportBatch, MemberPage, Org, SignInResponse};
use entitle_server::Config;

const EMAIL: &str = "operator@bench.example";
const ROWS_PER_FILE: usize = 1000;
const TARGET_MEMBERS: usize = 100_000;
const TIMED_COMMITS: usize = 7;
const LIST_REQUESTS: usize = 200;

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * p).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// A file of 1,000 new people, numbered from `first`, with the names and roles a real
/// upload has.
fn csv_file(first: usize) -> String {
    const GIVEN: [&str; 8] = [
        "José",
        "Anna",
        "王",
        "Αλέξης",
        "Mary",
        "Olu",
        "Pierre",
        "Sven",
    ];
    const FAMILY: [&str; 8] = [
        "Müller",
        "Smith",
        "小明",
        "Παππάς",
        "O'Brien",
        "Adeyemi",
        "Dubois",
        "Berg",
    ];
    let mut csv = String::from("Email,First Name,Last Name,Country,Roles\r\n");
    for n in first..first + ROWS_PER_FILE {
        let roles = if n % 10 == 0 {
            "license_checkout;usage_reports"
        } else {
            ""
        };
        csv.push_str(&format!(
            "user{n:06}@corp{}.example,{},{} {n},DE,{roles}\r\n",
            n % 7,
            GIVEN[n % 8],
            FAMILY[(n / 8) % 8],
        ));
    }
    csv
}

/// Waits until the invitations of earlier commits are written to the outbox, so that a
/// timed commit does not share the machine with the previous one's mail.
async fn wait_for_outbox(data_dir: &std::path::Path, expected: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written = std::fs::read_dir(data_dir.join("outbox"))
            .map(|d| d.count())
            .unwrap_or(0);
        if written >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {written} of {expected} emails were written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Stages and commits one file; the time of both requests together.
    async fn stage_and_commit(&self, org: uuid::Uuid, first: usize) -> anyhow::Result<f64> {
        let body = csv_file(first);
        let started = Instant::now();
        let staged: ImportBatch = self
            .http
            .post(format!(
                "{}/api/v1/orgs/{org}/imports?file_name=bench.csv",
                self.base
            ))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let committed: ImportBatch = self
            .http
            .post(format!(
                "{}/api/v1/orgs/{org}/imports/{}/commit",
                self.base, staged.id
            ))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            committed.committed_at.is_some()
                && committed.counts.get("valid") == Some(&(ROWS_PER_FILE as i64)),
            "the batch was not committed whole: {:?}",
            committed.counts
        );
        Ok(elapsed)
    }

    /// Latency of `LIST_REQUESTS` sequential member-list requests with `query`.
    async fn list_latency(&self, org: uuid::Uuid, query: &str) -> anyhow::Result<(f64, f64, i64)> {
        let mut times = Vec::with_capacity(LIST_REQUESTS);
        let mut total = 0;
        for _ in 0..LIST_REQUESTS {
            let started = Instant::now();
            let page: MemberPage = self
                .http
                .get(format!("{}/api/v1/orgs/{org}/members?{query}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            total = page.total;
        }
        Ok((
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.99),
            total,
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let entitled = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "target/release/entitled".into()),
    );
    let database_url = args.get(2).cloned().filter(|s| !s.is_empty());
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("data");
    let config = Config {
        data_dir: data_dir.clone(),
        database_url: database_url.clone(),
        ..Config::default()
    };

    common::insert_account(&config, EMAIL, true).await?;
    let server = common::serve(&entitled, &data_dir, database_url.as_deref()).await?;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let session: SignInResponse = http
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let api = Api {
        http,
        base,
        token: session.session_token,
    };
    let org: Org = api
        .http
        .post(format!("{}/api/v1/orgs", api.base))
        .bearer_auth(&api.token)
        .json(&serde_json::json!({
            "name": "Bench Corp",
            "fulfillment_contact": { "email": "contact@bench.example", "first_name": "Fay", "last_name": "Contact", "country": "DE" }
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;

    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("== {backend}");
    let mut next = 0;
    let mut small = Vec::new();
    // One invitation went to the Fulfillment Contact, and one goes to each person added.
    for _ in 0..TIMED_COMMITS {
        wait_for_outbox(&data_dir, next + 1).await?;
        small.push(api.stage_and_commit(org.id, next).await?);
        next += ROWS_PER_FILE;
    }
    let seeding = Instant::now();
    while next < TARGET_MEMBERS - TIMED_COMMITS * ROWS_PER_FILE {
        api.stage_and_commit(org.id, next).await?;
        next += ROWS_PER_FILE;
    }
    eprintln!(
        "seeded {} members in {:.1} s",
        next,
        seeding.elapsed().as_secs_f64()
    );
    let mut large = Vec::new();
    for _ in 0..TIMED_COMMITS {
        wait_for_outbox(&data_dir, next + 1).await?;
        large.push(api.stage_and_commit(org.id, next).await?);
        next += ROWS_PER_FILE;
    }
    wait_for_outbox(&data_dir, next + 1).await?;
    println!(
        "stage + commit of 1,000 rows, median of {TIMED_COMMITS}: {:.0} ms into an empty organization, {:.0} ms into one of ~{}k members",
        median(&mut small),
        median(&mut large),
        (next - ROWS_PER_FILE * TIMED_COMMITS) / 1000
    );

    if let Some(url) = &database_url {
        // What autovacuum does within a minute of a bulk load: without it, index-only
        // scans still visit the table for every row.
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;
    }
    println!(
        "member list at {} members ({LIST_REQUESTS} sequential requests each):",
        next + 1
    );
    println!("| query | matches | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (label, query) in [
        ("first page, by email", "limit=50"),
        ("page at offset 50,000, by email", "limit=50&offset=50000"),
        (
            "last page, by last name, descending",
            "limit=50&sort=last_name&order=desc&offset=99950",
        ),
        (
            "first page, by joined, descending",
            "limit=50&sort=joined&order=desc",
        ),
        ("search one email", "q=user054321%40corp"),
        ("search a name prefix (\"jos\")", "q=jos"),
        ("search a domain (\"corp3.example\")", "q=corp3.example"),
        ("search with no match", "q=nobody-here"),
        ("status filter: invited", "limit=50&status=invited"),
        ("role filter: usage_reports", "limit=50&role=usage_reports"),
        (
            "domain filter: corp3.example",
            "limit=50&domain=corp3.example",
        ),
        (
            "domain and role, searched (\"user00\")",
            "limit=50&domain=corp3.example&role=usage_reports&q=user00",
        ),
    ] {
        let (p50, p99, total) = api.list_latency(org.id, query).await?;
        println!("| {label} | {total} | {p50:.2} | {p99:.2} |");
    }

    // The member page's filter counts (by status, role and domain), computed on each view.
    let (p50, p99) = timed(|_| {
        let request = api
            .http
            .get(format!(
                "{}/api/v1/orgs/{}/members/counts",
                api.base, org.id
            ))
            .bearer_auth(&api.token)
            .send();
        async move {
            request.await?.error_for_status()?;
            Ok(())
        }
    })
    .await?;
    println!("member counts (the member page's filters), {LIST_REQUESTS} requests: p50 {p50:.2} ms, p99 {p99:.2} ms");

    // A bulk action on a full page of 200 members, each under the single-member rules.
    let page: MemberPage = api
        .http
        .get(format!(
            "{}/api/v1/orgs/{}/members?limit=200&offset=1000",
            api.base, org.id
        ))
        .bearer_auth(&api.token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ids: Vec<uuid::Uuid> = page.members.iter().map(|m| m.account_id).collect();
    let mut bulk_ms = Vec::new();
    for action in [
        "add_role",
        "remove_role",
        "add_role",
        "remove_role",
        "add_role",
    ] {
        let started = Instant::now();
        let outcome: serde_json::Value = api
            .http
            .post(format!("{}/api/v1/orgs/{}/members/bulk", api.base, org.id))
            .bearer_auth(&api.token)
            .json(&serde_json::json!({"action": action, "role": "software_downloads", "account_ids": ids}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        bulk_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            outcome["done"].as_array().map(Vec::len) == Some(ids.len()),
            "bulk: {outcome}"
        );
    }
    println!(
        "bulk role change of {} members (median of 5): {:.0} ms",
        ids.len(),
        percentile(&mut bulk_ms, 0.5)
    );

    // The header of every organization page: what the administrators still have to do,
    // here with 100,000 invited people who have not set a password.
    let (p50, p99) = timed(|_| {
        let request = api
            .http
            .get(format!(
                "{}/api/v1/orgs/{}/required-actions",
                api.base, org.id
            ))
            .bearer_auth(&api.token)
            .send();
        async move {
            request.await?.error_for_status()?;
            Ok(())
        }
    })
    .await?;
    println!("required actions (the org pages' header), {LIST_REQUESTS} requests: p50 {p50:.2} ms, p99 {p99:.2} ms");

    // SCIM, as an identity provider looks a person up before provisioning them.
    let created: serde_json::Value = api
        .http
        .post(format!("{}/api/v1/orgs/{}/scim-tokens", api.base, org.id))
        .bearer_auth(&api.token)
        .json(&serde_json::json!({"name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let scim = created["token"].as_str().unwrap_or_default().to_owned();
    println!(
        "SCIM at {} members ({LIST_REQUESTS} sequential requests each):",
        next + 1
    );
    println!("| request | results | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (label, query) in [
        (
            "userName eq (a member)",
            "filter=userName%20eq%20%22user054321@corp1.example%22",
        ),
        (
            "userName eq (nobody)",
            "filter=userName%20eq%20%22nobody@corp5.example%22",
        ),
        ("first page of 100, no filter", "count=100"),
    ] {
        let mut times = Vec::with_capacity(LIST_REQUESTS);
        let mut results = 0;
        for _ in 0..LIST_REQUESTS {
            let started = Instant::now();
            let page: serde_json::Value = api
                .http
                .get(format!("{}/scim/v2/Users?{query}", api.base))
                .bearer_auth(&scim)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            results = page["totalResults"].as_i64().unwrap_or(-1);
        }
        println!(
            "| {label} | {results} | {:.2} | {:.2} |",
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.99)
        );
    }

    // One /Bulk request of 1,000 user creations, three times (new people each time).
    let mut totals = Vec::new();
    for round in 0..3 {
        let operations: Vec<serde_json::Value> = (0..1000)
            .map(|n| {
                serde_json::json!({
                    "method": "POST", "path": "/Users", "bulkId": format!("b{n}"),
                    "data": {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("bulk{round}-{n:04}@scim.example"),
                        "name": {"givenName": "Bulk", "familyName": format!("Person {n}")},
                    },
                })
            })
            .collect();
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        });
        wait_for_outbox(&data_dir, next + 1 + round * 1000).await?;
        let started = Instant::now();
        let answer: serde_json::Value = api
            .http
            .post(format!("{}/scim/v2/Bulk", api.base))
            .bearer_auth(&scim)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        totals.push(started.elapsed().as_secs_f64() * 1000.0);
        let created = answer["Operations"]
            .as_array()
            .map(|ops| ops.iter().filter(|o| o["status"] == "201").count())
            .unwrap_or(0);
        anyhow::ensure!(created == 1000, "bulk created {created} of 1,000");
    }
    let median_ms = median(&mut totals);
    println!(
        "SCIM /Bulk of 1,000 user creations, median of 3: {median_ms:.0} ms ({:.2} ms per operation)",
        median_ms / 1000.0
    );
    bench_groups(&api, &scim, org.id).await?;
    if std::env::var_os("ENTITLE_BENCH_KEEP").is_some() {
        eprintln!("data kept in {}", temp.keep().display());
    }
    Ok(())
}

/// Times a request `LIST_REQUESTS` times: (p50, p99) in ms.
async fn timed<F, Fut>(mut request: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut times = Vec::with_capacity(LIST_REQUESTS);
    for n in 0..LIST_REQUESTS {
        let started = Instant::now();
        request(n).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((percentile(&mut times, 0.5), percentile(&mut times, 0.99)))
}

/// A group holding every member: filled 1,000 at a time, changed one person at a time,
/// looked up by member, and mapped to a role and back.
async fn bench_groups(api: &Api, scim: &str, org: uuid::Uuid) -> anyhow::Result<()> {
    let send = |method: reqwest::Method, path: String, body: serde_json::Value| {
        api.http
            .request(method, format!("{}{path}", api.base))
            .bearer_auth(scim)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    let mut ids: Vec<String> = Vec::new();
    loop {
        let page: serde_json::Value = api
            .http
            .get(format!(
                "{}/scim/v2/Users?attributes=id&count=1000&startIndex={}",
                api.base,
                ids.len() + 1
            ))
            .bearer_auth(scim)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let found = page["Resources"].as_array().cloned().unwrap_or_default();
        if found.is_empty() {
            break;
        }
        ids.extend(
            found
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
    }
    let group: serde_json::Value = send(
        reqwest::Method::POST,
        "/scim/v2/Groups".into(),
        serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let group_id = group["id"].as_str().unwrap_or_default().to_owned();
    let patch = |operations: serde_json::Value| serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations});
    let filling = Instant::now();
    let mut batches = Vec::new();
    for chunk in ids.chunks(1000) {
        let members: Vec<serde_json::Value> = chunk
            .iter()
            .map(|id| serde_json::json!({"value": id}))
            .collect();
        let started = Instant::now();
        send(
            reqwest::Method::PATCH,
            format!("/scim/v2/Groups/{group_id}"),
            patch(serde_json::json!([{"op": "add", "path": "members", "value": members}])),
        )
        .await?
        .error_for_status()?;
        batches.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "SCIM Group of {} members, filled by PATCH add of 1,000 members per request: {:.1} s in all, {:.0} ms median per request",
        ids.len(),
        filling.elapsed().as_secs_f64(),
        median(&mut batches)
    );
    println!("| request, on that group | p50 ms | p99 ms |");
    println!("|---|---|---|");
    let (p50, p99) = timed(|n| {
        let body = patch(serde_json::json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[n])}]));
        let request = send(reqwest::Method::PATCH, format!("/scim/v2/Groups/{group_id}"), body);
        async move {
            request.await?.error_for_status()?;
            Ok(())
        }
    })
    .await?;
    println!("| PATCH remove one member | {p50:.2} | {p99:.2} |");
    let (p50, p99) = timed(|n| {
        let body = patch(
            serde_json::json!([{"op": "add", "path": "members", "value": [{"value": ids[n]}]}]),
        );
        let request = send(
            reqwest::Method::PATCH,
            format!("/scim/v2/Groups/{group_id}"),
            body,
        );
        async move {
            request.await?.error_for_status()?;
            Ok(())
        }
    })
    .await?;
    println!("| PATCH add one member | {p50:.2} | {p99:.2} |");
    let (p50, p99) = timed(|n| {
        let request = api
            .http
            .get(format!(
                "{}/scim/v2/Groups?excludedAttributes=members&filter=members%5Bvalue%20eq%20%22{}%22%5D",
                api.base,
                ids[n * 97 % ids.len()]
            ))
            .bearer_auth(scim)
            .send();
        async move {
            let page: serde_json::Value = request.await?.error_for_status()?.json().await?;
            anyhow::ensure!(page["totalResults"] == 1, "the member's group is found");
            Ok(())
        }
    })
    .await?;
    println!("| GET /Groups?filter=members[value eq …]&excludedAttributes=members | {p50:.2} | {p99:.2} |");
    let mut mapping = Vec::new();
    let mut unmapping = Vec::new();
    for _ in 0..3 {
        for (role, times) in [
            (serde_json::json!("usage_reports"), &mut mapping),
            (serde_json::Value::Null, &mut unmapping),
        ] {
            let started = Instant::now();
            api.http
                .put(format!(
                    "{}/api/v1/orgs/{org}/scim-groups/{group_id}/role",
                    api.base
                ))
                .bearer_auth(&api.token)
                .json(&serde_json::json!({ "role": role }))
                .send()
                .await?
                .error_for_status()?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    println!(
        "mapping that group to a role (every member gains it), median of 3: {:.0} ms; unmapping (every member loses it): {:.0} ms",
        median(&mut mapping),
        median(&mut unmapping)
    );
    Ok(())
}
