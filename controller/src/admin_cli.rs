//! `skybroker admin …`: the Service Manager API (`/v1`) from a shell, for the operator who
//! would otherwise write curl lines: register brokers and platforms, make plans visible to
//! platforms, list what the landscape holds. Shaped after Peripli's `smctl` and Cloud
//! Foundry's `cf create-service-broker` / `cf enable-service-access`.
//!
//! A thin client on purpose: every rule is the server's, and a refusal is printed as the
//! server described it (the exit status is 1). Brokers and platforms are named by name or
//! id, plans by id or `offering/plan`. Lists follow the server's `token` to the end; `--json`
//! prints the server's JSON instead of a table, for scripts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

/// `skybroker admin`: where the broker is and what to do. The admin token (one of
/// `server.admin_tokens`) comes from `SKYBROKER_ADMIN_TOKEN` only, never from the command line,
/// where `ps` and shell histories would show it.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The broker's base URL.
    #[arg(long, env = "SKYBROKER_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A PEM file with the CA the broker's certificate chains to (a private CA).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

/// What `skybroker admin` does.
#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Register an external OSB broker: its catalog is fetched and checked now.
    RegisterBroker {
        /// A unique name.
        name: String,
        /// The broker's base URL (`/v2/catalog` is appended).
        url: String,
        /// Basic credentials: the user name (the password from --password-env).
        #[arg(long, requires = "password_env")]
        username: Option<String>,
        /// The environment variable holding the basic password (never on the command line).
        #[arg(long)]
        password_env: Option<String>,
        /// The environment variable holding a bearer token, instead of basic credentials.
        #[arg(long, conflicts_with = "username")]
        bearer_env: Option<String>,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Fetch a broker's catalog again (and change its URL when given).
    UpdateBroker {
        /// Its name or id.
        broker: String,
        /// A new base URL.
        #[arg(long)]
        url: Option<String>,
    },
    /// Remove a broker (refused while it has instances).
    DeleteBroker {
        /// Its name or id.
        broker: String,
    },
    /// The registered brokers.
    ListBrokers,
    /// Register a platform: prints its OSB credentials, this once.
    RegisterPlatform {
        /// A unique name.
        name: String,
        /// `cloudfoundry`, `kubernetes`, …
        #[arg(long = "type", default_value = "cloudfoundry")]
        kind: String,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Issue new OSB credentials to a platform (the old ones stop working).
    RegenerateCredentials {
        /// Its name or id.
        platform: String,
    },
    /// Remove a platform.
    DeletePlatform {
        /// Its name or id.
        platform: String,
    },
    /// The registered platforms.
    ListPlatforms,
    /// Make a plan visible to one platform, or to every platform.
    EnableAccess {
        /// The plan: its Service Manager id, or `offering/plan` by catalog names.
        plan: String,
        /// The platform (name or id); without it, every platform.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Remove the visibility `enable-access` made.
    DisableAccess {
        /// The plan: its Service Manager id, or `offering/plan` by catalog names.
        plan: String,
        /// The platform (name or id); without it, the visibility to every platform.
        #[arg(long)]
        platform: Option<String>,
    },
    /// The visibilities.
    ListVisibilities,
    /// Every offering of every broker.
    ListOfferings,
    /// Every plan of every broker.
    ListPlans,
    /// Every instance the broker tracks.
    ListInstances {
        /// A field query, e.g. `platform_id eq '…'`.
        #[arg(long)]
        field_query: Option<String>,
        /// A label query, e.g. `env in ('dev', 'test')`.
        #[arg(long)]
        label_query: Option<String>,
    },
    /// Every binding the broker tracks.
    ListBindings {
        /// A field query, e.g. `service_instance_id eq '…'`.
        #[arg(long)]
        field_query: Option<String>,
        /// A label query.
        #[arg(long)]
        label_query: Option<String>,
    },
    /// Let every platform that sees an instance's plan bind to it.
    ShareInstance {
        /// The instance's id.
        instance: String,
    },
    /// Stop sharing an instance (existing bindings stay).
    UnshareInstance {
        /// The instance's id.
        instance: String,
    },
}

/// `key=value`.
fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// Labels as the API takes them: each key with its values.
fn labels_of(pairs: &[(String, String)]) -> Value {
    let mut labels = serde_json::Map::new();
    for (key, value) in pairs {
        let values = labels.entry(key.clone()).or_insert_with(|| json!([]));
        if let Some(values) = values.as_array_mut() {
            values.push(json!(value));
        }
    }
    Value::Object(labels)
}

/// Why a command failed: the server's words, or the connection's.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The server refused.
    #[error("{status}: {description}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's description.
        description: String,
    },
    /// No answer, or not one the API gives.
    #[error("{0}")]
    Transport(String),
    /// The command cannot be carried out as given.
    #[error("{0}")]
    Usage(String),
}

/// A client of one broker's `/v1`.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(args: &AdminArgs) -> Result<Client, AdminError> {
        let token = secret_from("SKYBROKER_ADMIN_TOKEN")?;
        let timeout = Duration::from_secs(60);
        let http = match &args.cacert {
            None => skybroker_brokers::osb::http_client(timeout),
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|err| {
                    AdminError::Usage(format!("cannot read {}: {err}", path.display()))
                })?;
                skybroker_brokers::osb::http_client_for(timeout, Some(&pem), None)
            }
        }
        .map_err(|err| AdminError::Transport(err.to_string()))?;
        Ok(Client {
            http,
            base: format!("{}/v1", args.url.trim_end_matches('/')),
            token,
        })
    }

    /// One request; the JSON answer of a 2xx, the server's description otherwise.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, AdminError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|err| AdminError::Transport(format!("{}: {err}", self.base)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| AdminError::Transport(err.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let description = value["description"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(text);
        Err(AdminError::Refused {
            status: status.as_u16(),
            description,
        })
    }

    /// Every item of a list, following `token`.
    async fn list(&self, path: &str, filters: &[(&str, &str)]) -> Result<Vec<Value>, AdminError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = filters.to_vec();
            query.push(("max_items", "1000"));
            if let Some(token) = &token {
                query.push(("token", token));
            }
            let mut page = self.call(Method::GET, path, &query, None).await?;
            if let Some(page_items) = page["items"].as_array_mut() {
                items.append(page_items);
            }
            match page["token"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// The id of the broker or platform named `name_or_id` in the list at `path`.
    async fn id_of(&self, path: &str, name_or_id: &str) -> Result<String, AdminError> {
        let items = self.list(path, &[]).await?;
        items
            .iter()
            .find(|item| item["id"] == name_or_id)
            .or_else(|| items.iter().find(|item| item["name"] == name_or_id))
            .and_then(|item| item["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| AdminError::Usage(format!("no {path} named {name_or_id:?}")))
    }

    /// The Service Manager id of a plan given by id or as `offering/plan`.
    async fn plan_id(&self, plan: &str) -> Result<String, AdminError> {
        let plans = self.list("/service_plans", &[]).await?;
        if let Some(found) = plans.iter().find(|p| p["id"] == plan) {
            return Ok(found["id"].as_str().unwrap_or_default().to_owned());
        }
        let Some((offering, name)) = plan.split_once('/') else {
            return Err(AdminError::Usage(format!(
                "no plan {plan:?} (give its id or offering/plan)"
            )));
        };
        let offerings = self.list("/service_offerings", &[]).await?;
        let matches: Vec<&Value> = plans
            .iter()
            .filter(|p| p["name"] == name)
            .filter(|p| {
                offerings
                    .iter()
                    .any(|o| o["id"] == p["service_offering_id"] && o["name"] == offering)
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(one["id"].as_str().unwrap_or_default().to_owned()),
            [] => Err(AdminError::Usage(format!("no plan {plan:?}"))),
            _ => Err(AdminError::Usage(format!(
                "{plan:?} names several plans: give the plan's id"
            ))),
        }
    }
}

/// `text` as one path segment (ids may hold `/`, `?`, `%`).
fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The value of the environment variable `name` (a secret: never taken from the command line).
fn secret_from(name: &str) -> Result<String, AdminError> {
    std::env::var(name).map_err(|_| AdminError::Usage(format!("{name} is not set")))
}

/// What a command prints: one JSON value, or rows of columns.
enum Output {
    Json(Value),
    Table(Vec<&'static str>, Vec<Value>),
}

/// Runs `skybroker admin`; what it prints goes to stdout.
///
/// # Errors
/// The server refused, could not be reached, or the command names something that is not
/// there.
pub async fn run(args: AdminArgs) -> Result<String, AdminError> {
    let client = Client::new(&args)?;
    let output = execute(&client, args.command).await?;
    Ok(match output {
        Output::Json(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Output::Table(_, rows) if args.json => {
            serde_json::to_string_pretty(&Value::Array(rows)).unwrap_or_default()
        }
        Output::Table(columns, rows) => table(&columns, &rows),
    })
}

async fn execute(client: &Client, command: AdminCommand) -> Result<Output, AdminError> {
    use AdminCommand::*;
    let listed = |columns, rows| Ok(Output::Table(columns, rows));
    match command {
        RegisterBroker {
            name,
            url,
            username,
            password_env,
            bearer_env,
            labels,
        } => {
            let credentials = match (username, password_env, bearer_env) {
                (Some(username), Some(password_env), None) => {
                    json!({"basic": {"username": username, "password": secret_from(&password_env)?}})
                }
                (None, None, Some(bearer_env)) => {
                    json!({"bearer": {"token": secret_from(&bearer_env)?}})
                }
                _ => {
                    return Err(AdminError::Usage(
                        "give --username with --password-env, or --bearer-env".to_owned(),
                    ))
                }
            };
            let body = json!({"name": name, "broker_url": url, "credentials": credentials,
                "labels": labels_of(&labels)});
            let broker = client
                .call(Method::POST, "/service_brokers", &[], Some(body))
                .await?;
            Ok(Output::Json(broker))
        }
        UpdateBroker { broker, url } => {
            let id = client.id_of("/service_brokers", &broker).await?;
            let body = match url {
                Some(url) => json!({"broker_url": url}),
                None => json!({}),
            };
            let path = format!("/service_brokers/{}", segment(&id));
            Ok(Output::Json(
                client.call(Method::PATCH, &path, &[], Some(body)).await?,
            ))
        }
        DeleteBroker { broker } => {
            let id = client.id_of("/service_brokers", &broker).await?;
            let path = format!("/service_brokers/{}", segment(&id));
            client.call(Method::DELETE, &path, &[], None).await?;
            Ok(Output::Json(json!({"deleted": id})))
        }
        ListBrokers => listed(
            vec!["id", "name", "broker_url", "created_at"],
            client.list("/service_brokers", &[]).await?,
        ),
        RegisterPlatform { name, kind, labels } => {
            let body = json!({"name": name, "type": kind, "labels": labels_of(&labels)});
            Ok(Output::Json(
                client
                    .call(Method::POST, "/platforms", &[], Some(body))
                    .await?,
            ))
        }
        RegenerateCredentials { platform } => {
            let id = client.id_of("/platforms", &platform).await?;
            let path = format!("/platforms/{}", segment(&id));
            let query = [("regenerate_credentials", "true")];
            Ok(Output::Json(
                client
                    .call(Method::PATCH, &path, &query, Some(json!({})))
                    .await?,
            ))
        }
        DeletePlatform { platform } => {
            let id = client.id_of("/platforms", &platform).await?;
            let path = format!("/platforms/{}", segment(&id));
            client.call(Method::DELETE, &path, &[], None).await?;
            Ok(Output::Json(json!({"deleted": id})))
        }
        ListPlatforms => listed(
            vec!["id", "name", "type", "created_at"],
            client.list("/platforms", &[]).await?,
        ),
        EnableAccess { plan, platform } => {
            let plan = client.plan_id(&plan).await?;
            let platform = match platform {
                Some(platform) => Some(client.id_of("/platforms", &platform).await?),
                None => None,
            };
            let body = json!({"service_plan_id": plan, "platform_id": platform});
            Ok(Output::Json(
                client
                    .call(Method::POST, "/visibilities", &[], Some(body))
                    .await?,
            ))
        }
        DisableAccess { plan, platform } => {
            let plan = client.plan_id(&plan).await?;
            let platform = match platform {
                Some(platform) => Value::from(client.id_of("/platforms", &platform).await?),
                None => Value::Null,
            };
            let visibilities = client.list("/visibilities", &[]).await?;
            let found: Vec<&Value> = visibilities
                .iter()
                .filter(|v| v["service_plan_id"] == plan && v["platform_id"] == platform)
                .collect();
            if found.is_empty() {
                return Err(AdminError::Usage(
                    "no such visibility: the plan is not enabled there".to_owned(),
                ));
            }
            for id in found.iter().filter_map(|v| v["id"].as_str()) {
                let path = format!("/visibilities/{}", segment(id));
                client.call(Method::DELETE, &path, &[], None).await?;
            }
            Ok(Output::Json(json!({"deleted": found.len()})))
        }
        ListVisibilities => listed(
            vec!["id", "service_plan_id", "platform_id"],
            client.list("/visibilities", &[]).await?,
        ),
        ListOfferings => listed(
            vec!["id", "name", "broker_id", "catalog_id"],
            client.list("/service_offerings", &[]).await?,
        ),
        ListPlans => listed(
            vec!["id", "name", "service_offering_id", "catalog_id"],
            client.list("/service_plans", &[]).await?,
        ),
        ListInstances {
            field_query,
            label_query,
        } => listed(
            vec!["id", "state", "service_plan_id", "platform_id", "shared"],
            client
                .list("/service_instances", &filters(&field_query, &label_query))
                .await?,
        ),
        ListBindings {
            field_query,
            label_query,
        } => listed(
            vec!["id", "state", "service_instance_id", "platform_id"],
            client
                .list("/service_bindings", &filters(&field_query, &label_query))
                .await?,
        ),
        ShareInstance { instance } => share(client, &instance, true).await,
        UnshareInstance { instance } => share(client, &instance, false).await,
    }
}

fn filters<'a>(field: &'a Option<String>, label: &'a Option<String>) -> Vec<(&'a str, &'a str)> {
    let mut query = Vec::new();
    if let Some(field) = field {
        query.push(("fieldQuery", field.as_str()));
    }
    if let Some(label) = label {
        query.push(("labelQuery", label.as_str()));
    }
    query
}

async fn share(client: &Client, instance: &str, shared: bool) -> Result<Output, AdminError> {
    let path = format!("/service_instances/{}", segment(instance));
    let body = json!({ "shared": shared });
    Ok(Output::Json(
        client.call(Method::PATCH, &path, &[], Some(body)).await?,
    ))
}

/// Rows as a plain table: a header, then one line per item, columns padded.
fn table(columns: &[&str], rows: &[Value]) -> String {
    let cell = |row: &Value, column: &str| match &row[column] {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row, c)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(n, column)| {
            cells
                .iter()
                .map(|row| row[n].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        values
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(columns.to_vec())];
    for row in &cells {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.push(format!("{} item(s)", rows.len()));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_their_columns() {
        let rows = vec![
            json!({"id": "p-1", "name": "cf-eu", "shared": true}),
            json!({"id": "p-22", "name": null, "shared": false}),
        ];
        assert_eq!(
            table(&["id", "name", "shared"], &rows),
            "id    name   shared\np-1   cf-eu  true\np-22         false\n2 item(s)"
        );
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(segment("a/b c%?#"), "a%2Fb%20c%25%3F%23");
        assert_eq!(segment("plain-id"), "plain-id");
    }

    #[test]
    fn labels_gather_values_per_key() {
        let pairs = [
            ("env".to_owned(), "dev".to_owned()),
            ("env".to_owned(), "test".to_owned()),
            ("team".to_owned(), "db".to_owned()),
        ];
        assert_eq!(
            labels_of(&pairs),
            json!({"env": ["dev", "test"], "team": ["db"]})
        );
        assert_eq!(label("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert!(label("=x").is_err());
        assert!(label("novalue").is_err());
    }
}
