//! The operator's console: the vendor's staff find, create and open organizations,
//! register and disable OAuth clients and rotate the signing keys. Each page calls the
//! same functions as the JSON API; only operators get past `OperatorPage::open`.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};
use entitle_proto::{
    ClientRegistration, CreateOrgRequest, NewPerson, OAuthClient, OrgSummary, OveragePolicy,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    admin::{date, members::PersonForm, notice_text, see_other, Done},
    form_problem, render, CheckedForm, Chrome, Confirmation, FormError, Page, PageError,
};
use crate::{
    app::{AppState, Client},
    entitlements::catalog,
    error::{ApiError, Path, Query},
    identity::{
        flows::actor_of,
        session::{require_operator, CurrentSession},
    },
    oidc::{self, clients::GRANT_TYPES},
    orgs::{self, directory},
};

type PageResult = Result<Response, PageError>;

/// An operator on one of the console's pages.
struct OperatorPage {
    page: Page,
    current: CurrentSession,
}

impl OperatorPage {
    /// Signs in (coming back here) and accepts the terms first; 403 for anyone but an
    /// operator.
    async fn open(
        state: &AppState,
        page: Page,
        here: &str,
    ) -> Result<Result<OperatorPage, Response>, PageError> {
        let current = match super::signed_in_with_terms(state, &page, here).await? {
            Ok(current) => current,
            Err(detour) => return Ok(Err(detour)),
        };
        require_operator(&current.account)?;
        Ok(Ok(OperatorPage { page, current }))
    }

    fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            console: Some(section),
            ..self.page.chrome()
        }
    }

    fn respond(self, template: &impl Template) -> Response {
        (self.page.jar, render(template)).into_response()
    }
}

macro_rules! operator_page {
    ($state:expr, $page:expr, $here:expr) => {
        match OperatorPage::open($state, $page, $here).await? {
            Ok(operator) => operator,
            Err(response) => return Ok(response),
        }
    };
}

pub async fn console() -> Redirect {
    Redirect::to("/operator/orgs")
}

// ---- Organizations ------------------------------------------------------------------

struct OrgRow {
    id: uuid::Uuid,
    name: String,
    member_count: i64,
    created: String,
}

#[derive(Template)]
#[template(path = "pages/operator_orgs.html")]
struct OrgsPage {
    chrome: Chrome,
    q: String,
    orgs: Vec<OrgRow>,
    total: i64,
    first: i64,
    last: i64,
    previous: Option<String>,
    next: Option<String>,
    org_name: String,
    with_email: bool,
    person: PersonForm,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

#[derive(Deserialize, Default)]
pub struct OrgsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    done: Option<String>,
}

async fn orgs_page(
    state: &AppState,
    operator: OperatorPage,
    query: &OrgsQuery,
    filled: Option<(String, PersonForm)>,
    error: Option<ApiError>,
) -> PageResult {
    let listing = directory::OrgQuery {
        q: query.q.clone(),
        offset: query.offset,
        limit: None,
    };
    let found = directory::list(state, &operator.current.account, &listing).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let href = |offset: i64| {
        let params = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &query.q)
            .append_pair("offset", &offset.to_string())
            .finish();
        format!("/operator/orgs?{params}")
    };
    let shown = found.orgs.len() as i64;
    let (org_name, person) = filled.unwrap_or_else(|| {
        (
            String::new(),
            PersonForm {
                email: String::new(),
                first_name: String::new(),
                last_name: String::new(),
                country: String::new(),
            },
        )
    });
    let template = OrgsPage {
        chrome: operator.chrome("orgs"),
        q: query.q.clone(),
        total: found.total,
        first: found.offset + 1,
        last: found.offset + shown,
        previous: (found.offset > 0).then(|| href((found.offset - found.limit).max(0))),
        next: (found.offset + shown < found.total).then(|| href(found.offset + found.limit)),
        orgs: found
            .orgs
            .into_iter()
            .map(|o: OrgSummary| OrgRow {
                id: o.id,
                name: o.name,
                member_count: o.member_count,
                created: date(o.created_at),
            })
            .collect(),
        org_name,
        with_email: true,
        person,
        notice: notice_text(query.done.as_deref()),
        errors,
        form_error,
    };
    Ok(operator.respond(&template))
}

pub async fn orgs(
    State(state): State<AppState>,
    page: Page,
    Query(query): Query<OrgsQuery>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/orgs");
    orgs_page(&state, operator, &query, None, None).await
}

pub async fn create_org(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/orgs");
    let person = PersonForm::from_form(&form);
    let name = form.get("org_name").cloned().unwrap_or_default();
    let request = CreateOrgRequest {
        name: name.clone(),
        fulfillment_contact: NewPerson {
            email: person.email.clone(),
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            country: person.country.clone(),
        },
    };
    match orgs::create_with_contact(&state, &operator.current.account, request, &client).await {
        Ok(org) => Ok(see_other(format!("/orgs/{}/members?done=created", org.id))),
        Err(error) => {
            let query = OrgsQuery::default();
            orgs_page(&state, operator, &query, Some((name, person)), Some(error)).await
        }
    }
}

// ---- Clients ------------------------------------------------------------------------

/// The registration form as typed, shown again when it is refused.
#[derive(Default)]
struct ClientForm {
    name: String,
    confidential: bool,
    resource_server: bool,
    grant_types: Vec<String>,
    redirect_uris: String,
    scopes: String,
}

impl ClientForm {
    fn from_pairs(pairs: &[(String, String)]) -> ClientForm {
        let one = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        ClientForm {
            name: one("name"),
            confidential: one("confidential") == "true",
            resource_server: one("resource_server") == "true",
            grant_types: pairs
                .iter()
                .filter(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.clone())
                .collect(),
            redirect_uris: one("redirect_uris"),
            scopes: one("scopes"),
        }
    }

    fn registration(&self) -> ClientRegistration {
        ClientRegistration {
            name: self.name.clone(),
            confidential: self.confidential,
            redirect_uris: self
                .redirect_uris
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: self.grant_types.clone(),
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
            org_id: None,
            access_token_ttl_secs: None,
            refresh_token_ttl_secs: None,
            id_token_signed_response_alg: None,
            resource_server: self.resource_server,
        }
    }
}

struct ClientRow {
    client: OAuthClient,
    disable: Confirmation,
}

fn disable_confirmation(client: &OAuthClient) -> Confirmation {
    Confirmation {
        title: format!("Disable the client {} ({})?", client.name, client.client_id),
        detail: "Its tokens are revoked at once and it gets no more; applications using it stop signing people in.".to_owned(),
        button: "Disable",
        action: format!("/operator/clients/{}/disable", client.client_id),
        fields: Vec::new(),
        back: "/operator/clients".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "pages/operator_clients.html")]
struct ClientsPage {
    chrome: Chrome,
    clients: Vec<ClientRow>,
    /// A client just registered: its secret, shown this once.
    created: Option<OAuthClient>,
    form: ClientForm,
    grant_choices: Vec<(&'static str, bool)>,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn clients_page(
    state: &AppState,
    operator: OperatorPage,
    done: Option<&str>,
    created: Option<OAuthClient>,
    form: ClientForm,
    error: Option<ApiError>,
) -> PageResult {
    let clients = oidc::api::clients(state).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let grant_choices = GRANT_TYPES
        .iter()
        .map(|g| (*g, form.grant_types.iter().any(|t| t == g)))
        .collect();
    let template = ClientsPage {
        chrome: operator.chrome("clients"),
        clients: clients
            .into_iter()
            .map(|client| ClientRow {
                disable: disable_confirmation(&client),
                client,
            })
            .collect(),
        created,
        form,
        grant_choices,
        notice: notice_text(done),
        errors,
        form_error,
    };
    Ok(operator.respond(&template))
}

pub async fn clients(
    State(state): State<AppState>,
    page: Page,
    Query(done): Query<Done>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/clients");
    clients_page(
        &state,
        operator,
        done.done.as_deref(),
        None,
        ClientForm::default(),
        None,
    )
    .await
}

/// Registers a client; the page that answers shows its secret, once, never in a URL.
pub async fn register_client(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(pairs): CheckedForm<Vec<(String, String)>>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/clients");
    let form = ClientForm::from_pairs(&pairs);
    let actor = actor_of(&operator.current.account, &client);
    match oidc::api::register(&state, &actor, &form.registration()).await {
        Ok(created) => {
            clients_page(
                &state,
                operator,
                None,
                Some(created),
                ClientForm::default(),
                None,
            )
            .await
        }
        Err(error) => clients_page(&state, operator, None, None, form, Some(error)).await,
    }
}

pub async fn disable_client(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(client_id): Path<String>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/clients");
    if !super::confirmed(form.iter()) {
        let registered = oidc::api::clients(&state)
            .await?
            .into_iter()
            .find(|c| c.client_id == client_id)
            .ok_or(ApiError::NotFound)?;
        let template = super::ConfirmPage {
            chrome: operator.chrome("clients"),
            confirmation: disable_confirmation(&registered),
        };
        return Ok(operator.respond(&template));
    }
    let actor = actor_of(&operator.current.account, &client);
    match oidc::api::disable(&state, &actor, &client_id).await {
        Ok(()) => Ok(see_other(
            "/operator/clients?done=disabled_client".to_owned(),
        )),
        Err(error) => {
            clients_page(
                &state,
                operator,
                None,
                None,
                ClientForm::default(),
                Some(error),
            )
            .await
        }
    }
}

// ---- Signing keys -------------------------------------------------------------------

struct KeyRow {
    kid: String,
    alg: String,
    created: String,
    state: String,
}

#[derive(Template)]
#[template(path = "pages/operator_keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    notice: Option<String>,
    form_error: Option<FormError>,
}

pub async fn keys(
    State(state): State<AppState>,
    page: Page,
    Query(done): Query<Done>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/keys");
    let now = crate::db::now_ms();
    let keys = oidc::api::signing_keys(&state)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            state: match (k.retired_at, k.publish_until) {
                (None, _) => "signing".to_owned(),
                (Some(_), Some(until)) if until > now => {
                    format!("retired, published until {} UTC", date(until))
                }
                _ => "retired".to_owned(),
            },
            created: date(k.created_at),
            kid: k.kid,
            alg: k.alg,
        })
        .collect();
    let template = KeysPage {
        chrome: operator.chrome("keys"),
        keys,
        notice: notice_text(done.done.as_deref()),
        form_error: None,
    };
    Ok(operator.respond(&template))
}

pub async fn rotate_keys(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(_): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/keys");
    oidc::api::rotate_keys(&state, &actor_of(&operator.current.account, &client)).await?;
    Ok(see_other("/operator/keys?done=rotated".to_owned()))
}

// ---- Products and subscriptions ------------------------------------------------------

/// The product form as typed: versions separated by commas.
#[derive(Deserialize, Default)]
pub struct ProductForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    versions: String,
}

fn versions_of(typed: &str) -> Vec<String> {
    typed
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "pages/operator_products.html")]
struct ProductsPage {
    chrome: Chrome,
    products: Vec<entitle_proto::Product>,
    form: ProductForm,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

async fn products_page(
    state: &AppState,
    operator: OperatorPage,
    notice: Option<String>,
    form: ProductForm,
    error: Option<ApiError>,
) -> PageResult {
    let mut conn = state.db.reader().await?;
    let products = catalog::products(&mut conn).await?;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = ProductsPage {
        chrome: operator.chrome("products"),
        products,
        form,
        notice,
        errors,
        form_error,
    };
    Ok(operator.respond(&template))
}

#[derive(Deserialize, Default)]
pub struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn products(
    State(state): State<AppState>,
    page: Page,
    Query(saved): Query<Saved>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/products");
    let notice = saved.saved.map(|code| format!("Saved {code}."));
    products_page(&state, operator, notice, ProductForm::default(), None).await
}

pub async fn add_product(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<ProductForm>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/products");
    let new = entitle_proto::NewProduct {
        code: form.code.trim().to_owned(),
        name: form.name.clone(),
        versions: versions_of(&form.versions),
    };
    let actor = actor_of(&operator.current.account, &client);
    match catalog::add_product(&state, &actor, &new).await {
        Ok(product) => Ok(see_other(format!(
            "/operator/products?saved={}",
            product.code
        ))),
        Err(error) => products_page(&state, operator, None, form, Some(error)).await,
    }
}

pub async fn change_product(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(code): Path<String>,
    CheckedForm(form): CheckedForm<ProductForm>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/products");
    let change = entitle_proto::ProductChange {
        name: Some(form.name.clone()),
        versions: Some(versions_of(&form.versions)),
    };
    let actor = actor_of(&operator.current.account, &client);
    match catalog::change_product(&state, &actor, &code, &change).await {
        Ok(product) => Ok(see_other(format!(
            "/operator/products?saved={}",
            product.code
        ))),
        Err(error) => products_page(&state, operator, None, form, Some(error)).await,
    }
}

/// The subscription form as typed; dates as `YYYY-MM-DD` (UTC midnight).
#[derive(Deserialize, Default)]
pub struct SubscriptionForm {
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    products: String,
    #[serde(default)]
    seats: String,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
    #[serde(default)]
    overage: String,
    #[serde(default)]
    overage_factor: String,
}

struct SubscriptionRow {
    subscription: entitle_proto::Subscription,
    starts: String,
    ends: String,
    overage: String,
    end: Option<Confirmation>,
}

#[derive(Template)]
#[template(path = "pages/operator_subscriptions.html")]
struct SubscriptionsPage {
    chrome: Chrome,
    subscriptions: Vec<SubscriptionRow>,
    orgs: Vec<OrgSummary>,
    products: Vec<String>,
    form: SubscriptionForm,
    notice: Option<String>,
    errors: HashMap<String, String>,
    form_error: Option<FormError>,
}

/// A day as typed in a date field: its UTC midnight.
fn day_of(field: &str, typed: &str) -> Result<i64, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(typed.trim(), &format)
        .map(|d| (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| ApiError::field(field, "invalid", "Give a date."))
}

fn day_text(ms: i64) -> String {
    date(ms).chars().take(10).collect()
}

fn end_confirmation(s: &entitle_proto::Subscription) -> Confirmation {
    Confirmation {
        title: format!(
            "End {}'s subscription to {} now?",
            s.org_name,
            s.products.join(", ")
        ),
        detail: "No new lease or checkout is granted from it from this moment; licenses already out run until they expire or are checked in.".to_owned(),
        button: "End now",
        action: format!("/operator/subscriptions/{}/end", s.id),
        fields: Vec::new(),
        back: "/operator/subscriptions".to_owned(),
    }
}

async fn subscriptions_page(
    state: &AppState,
    operator: OperatorPage,
    notice: Option<String>,
    form: SubscriptionForm,
    error: Option<ApiError>,
) -> PageResult {
    let mut conn = state.db.reader().await?;
    let subscriptions = catalog::subscriptions(&mut conn, None).await?;
    let products = catalog::products(&mut conn).await?;
    drop(conn);
    let orgs = directory::list(
        state,
        &operator.current.account,
        &directory::OrgQuery {
            q: String::new(),
            offset: None,
            limit: Some(200),
        },
    )
    .await?
    .orgs;
    let (errors, form_error) = match error {
        Some(error) => form_problem(error)?,
        None => (HashMap::new(), None),
    };
    let template = SubscriptionsPage {
        chrome: operator.chrome("subscriptions"),
        subscriptions: subscriptions
            .into_iter()
            .map(|s| SubscriptionRow {
                starts: day_text(s.starts_at),
                ends: day_text(s.ends_at),
                overage: match (s.overage, s.overage_factor) {
                    (OveragePolicy::Allow, _) => "allow".to_owned(),
                    (OveragePolicy::AllowUpTo, Some(f)) => format!("allow up to {f}×"),
                    _ => "deny".to_owned(),
                },
                end: (s.status != "ended").then(|| end_confirmation(&s)),
                subscription: s,
            })
            .collect(),
        orgs,
        products: products.into_iter().map(|p| p.code).collect(),
        form,
        notice,
        errors,
        form_error,
    };
    Ok(operator.respond(&template))
}

pub async fn subscriptions(
    State(state): State<AppState>,
    page: Page,
    Query(saved): Query<Saved>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/subscriptions");
    let notice = saved.saved.map(|what| match what.as_str() {
        "ended" => "Ended: it grants no new leases or checkouts.".to_owned(),
        _ => "Saved.".to_owned(),
    });
    let form = SubscriptionForm {
        starts: day_text(crate::db::now_ms()),
        overage: "deny".to_owned(),
        ..SubscriptionForm::default()
    };
    subscriptions_page(&state, operator, notice, form, None).await
}

fn new_subscription(form: &SubscriptionForm) -> Result<entitle_proto::NewSubscription, ApiError> {
    let org_id = Uuid::parse_str(form.org_id.trim())
        .map_err(|_| ApiError::field("org_id", "invalid", "Choose an organization."))?;
    let seats = form
        .seats
        .trim()
        .parse()
        .map_err(|_| ApiError::field("seats", "invalid", "Give a whole number of seats."))?;
    let overage: OveragePolicy =
        serde_json::from_value(serde_json::Value::String(form.overage.trim().to_owned()))
            .map_err(|_| ApiError::field("overage", "invalid", "Choose an overage policy."))?;
    let overage_factor = match form.overage_factor.trim() {
        "" => None,
        typed => Some(typed.parse().map_err(|_| {
            ApiError::field("overage_factor", "invalid", "Give a factor such as 1.25.")
        })?),
    };
    Ok(entitle_proto::NewSubscription {
        org_id,
        products: versions_of(&form.products),
        seats,
        starts_at: Some(day_of("starts", &form.starts)?),
        ends_at: day_of("ends", &form.ends)?,
        overage,
        overage_factor,
    })
}

pub async fn add_subscription(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    CheckedForm(form): CheckedForm<SubscriptionForm>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/subscriptions");
    let actor = actor_of(&operator.current.account, &client);
    let added = match new_subscription(&form) {
        Ok(new) => catalog::add_subscription(&state, &actor, &new).await,
        Err(error) => Err(error),
    };
    match added {
        Ok(_) => Ok(see_other("/operator/subscriptions?saved=added".to_owned())),
        Err(error) => subscriptions_page(&state, operator, None, form, Some(error)).await,
    }
}

pub async fn change_subscription(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(id): Path<Uuid>,
    CheckedForm(form): CheckedForm<SubscriptionForm>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/subscriptions");
    let actor = actor_of(&operator.current.account, &client);
    let change = (|| {
        Ok::<_, ApiError>(entitle_proto::SubscriptionChange {
            seats: Some(form.seats.trim().parse().map_err(|_| {
                ApiError::field("seats", "invalid", "Give a whole number of seats.")
            })?),
            starts_at: Some(day_of("starts", &form.starts)?),
            ends_at: Some(day_of("ends", &form.ends)?),
            products: None,
        })
    })();
    let changed = match change {
        Ok(change) => catalog::change_subscription(&state, &actor, id, &change).await,
        Err(error) => Err(error),
    };
    match changed {
        Ok(_) => Ok(see_other(
            "/operator/subscriptions?saved=changed".to_owned(),
        )),
        Err(error) => {
            let form = SubscriptionForm::default();
            subscriptions_page(&state, operator, None, form, Some(error)).await
        }
    }
}

pub async fn end_subscription(
    State(state): State<AppState>,
    page: Page,
    client: Client,
    Path(id): Path<Uuid>,
    CheckedForm(form): CheckedForm<HashMap<String, String>>,
) -> PageResult {
    let operator = operator_page!(&state, page, "/operator/subscriptions");
    if !super::confirmed(form.iter()) {
        let subscription = catalog::get_subscription(&state, id).await?;
        let template = super::ConfirmPage {
            chrome: operator.chrome("subscriptions"),
            confirmation: end_confirmation(&subscription),
        };
        return Ok(operator.respond(&template));
    }
    let actor = actor_of(&operator.current.account, &client);
    catalog::end_subscription(&state, &actor, id).await?;
    Ok(see_other("/operator/subscriptions?saved=ended".to_owned()))
}
