//! The AWS emulator (moto server) on loopback, and what tests need to make it an account
//! that says no: keys per account, IAM users and roles created from policy documents, web
//! identity sessions, a signed Query API client (IAM has no SDK in this workspace), and
//! `enforce`, after which every request is checked against its caller's IAM policies.
//!
//! moto evaluates Action, Resource and Condition like AWS for S3 (which passes it the
//! object's ARN); for other services it checks the action against the resource `*` and
//! treats a statement with a condition it cannot evaluate as a deny. `for_emulator` adapts
//! a policy to that, and the tests say which properties they prove statically instead.

use std::process::Command;
use std::time::Duration;

use shopmicro_common::testing::eventually_async;

use aws_credential_types::Credentials;
use serde_json::Value;

/// A moto server on a free port, killed when dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto (S3, DynamoDB, STS, IAM, EKS, … on one loopback port).
pub async fn moto() -> Moto {
    start(&[]).await
}

/// Starts moto with its request-signature checks off. Once it enforces IAM it still takes
/// the caller's identity from the access key and checks every request against that
/// identity's policies; but its signature check recomputes some valid signatures wrongly
/// (S3 queries with an encoded `/`, every EKS REST call) and would refuse those requests.
pub async fn moto_trusting_signatures() -> Moto {
    start(&[
        "-c",
        "import sys; from moto.iam.access_control import IAMRequestBase; \
         IAMRequestBase.check_signature = lambda self: None; \
         from moto.server import main; main(sys.argv[1:])",
    ])
    .await
}

/// moto_server, or with `python` the venv's interpreter running `python` before the
/// server's arguments.
async fn start(python: &[&str]) -> Moto {
    let binary = std::env::var("SHOPMICRO_MOTO_SERVER").unwrap_or_else(|_| {
        format!(
            "{}/.cache/shopmicro-ci/moto/bin/moto_server",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let port = shopmicro_common::testing::closed_port();
    let program = if python.is_empty() {
        binary.clone()
    } else {
        std::path::Path::new(&binary)
            .with_file_name("python")
            .display()
            .to_string()
    };
    let child = Command::new(&program)
        .args(python)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("{program}: {err} (the README's test command installs moto[server])")
        });
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let endpoint = &moto.endpoint;
    eventually_async("moto to start", Duration::from_secs(30), || async move {
        reqwest::get(endpoint).await.map(drop)
    })
    .await;
    moto
}

/// Starts moto and creates `bucket` in it.
pub async fn moto_with_bucket(bucket: &str) -> Moto {
    let moto = moto().await;
    // Path-style bucket creation; moto accepts unsigned requests until it enforces.
    let created = reqwest::Client::new()
        .put(format!("{}/{bucket}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    moto
}

/// AWS credentials: an access key, its secret and, for a session, its token.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret: String,
    pub session: Option<String>,
}

impl Keys {
    /// moto's keys for its default account (123456789012), valid until it enforces.
    pub fn testing() -> Self {
        Self {
            access_key: "testing".into(),
            secret: "testing".into(),
            session: None,
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key,
            &self.secret,
            self.session.clone(),
            None,
            "test",
        )
    }

    /// The standard credential chain's variables for these keys.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ];
        vars.extend(
            self.session
                .clone()
                .map(|token| ("AWS_SESSION_TOKEN", token)),
        );
        vars
    }
}

/// The text of the first `<name>` element of an XML answer.
pub fn xml_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].to_string())
}

impl Moto {
    /// An S3 client pinned to this emulator (path-style, fixed test credentials).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3_as(&Keys::testing())
    }

    pub fn s3_as(&self, keys: &Keys) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(aws_sdk_s3::config::Region::new("eu-west-1"))
                .credentials_provider(keys.credentials())
                .force_path_style(true)
                .build(),
        )
    }

    fn sts_as(&self, keys: &Keys) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::new()
                .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(aws_sdk_sts::config::Region::new("eu-west-1"))
                .credentials_provider(keys.credentials())
                .build(),
        )
    }

    pub fn eks_as(&self, keys: &Keys) -> aws_sdk_eks::Client {
        aws_sdk_eks::Client::from_conf(
            aws_sdk_eks::config::Builder::new()
                .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(aws_sdk_eks::config::Region::new("eu-west-1"))
                .credentials_provider(keys.credentials())
                .build(),
        )
    }

    /// A DynamoDB client pinned to this emulator.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_as(&Keys::testing())
    }

    pub fn dynamodb_as(&self, keys: &Keys) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::new()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
                .credentials_provider(keys.credentials())
                .build(),
        )
    }

    /// Keys for another account (the emulator's STS AssumeRole into `account`, which it
    /// grants to anyone before it enforces).
    pub async fn keys_for_account(&self, account: &str) -> Keys {
        if account == "123456789012" {
            return Keys::testing();
        }
        let assumed = self
            .sts_as(&Keys::testing())
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/elsewhere"))
            .role_session_name("shopctl-test")
            .send()
            .await
            .unwrap();
        let credentials = assumed.credentials.unwrap();
        Keys {
            access_key: credentials.access_key_id,
            secret: credentials.secret_access_key,
            session: Some(credentials.session_token),
        }
    }

    /// `keys_for_account` as (access key, secret key, session token).
    pub async fn credentials_for_account(&self, account: &str) -> (String, String, String) {
        let keys = self.keys_for_account(account).await;
        (
            keys.access_key,
            keys.secret,
            keys.session.unwrap_or_default(),
        )
    }

    /// A signed AWS Query API call (IAM's protocol); the XML answer, or the error's.
    pub async fn query(
        &self,
        keys: &Keys,
        service: &str,
        params: &[(&str, &str)],
    ) -> Result<String, String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let url = format!("{}/", self.endpoint);
        let identity = keys.credentials().into();
        let signing = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let request = SignableRequest::new(
            "POST",
            &url,
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(request, &signing).unwrap().into_parts();
        let mut outgoing = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in instructions.headers() {
            outgoing = outgoing.header(name, value);
        }
        let response = outgoing.send().await.map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if ok { Ok(text) } else { Err(text) }
    }

    async fn iam(&self, keys: &Keys, params: &[(&str, &str)]) -> String {
        let mut all = params.to_vec();
        all.push(("Version", "2010-05-08"));
        self.query(keys, "iam", &all)
            .await
            .unwrap_or_else(|e| panic!("IAM {params:?}: {e}"))
    }

    /// An IAM user allowed everything, for the test's own calls once the emulator enforces.
    pub async fn administrator(&self, keys: &Keys) -> Keys {
        let name = format!("administrator-{}", uuid::Uuid::new_v4().simple());
        self.iam(keys, &[("Action", "CreateUser"), ("UserName", &name)])
            .await;
        let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        self.iam(
            keys,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", &name),
                ("PolicyName", "everything"),
                ("PolicyDocument", everything),
            ],
        )
        .await;
        let created = self
            .iam(keys, &[("Action", "CreateAccessKey"), ("UserName", &name)])
            .await;
        Keys {
            access_key: xml_text(&created, "AccessKeyId").unwrap(),
            secret: xml_text(&created, "SecretAccessKey").unwrap(),
            session: None,
        }
    }

    pub async fn create_role(&self, keys: &Keys, name: &str, trust: &Value) {
        self.iam(
            keys,
            &[
                ("Action", "CreateRole"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust.to_string()),
            ],
        )
        .await;
    }

    pub async fn put_role_policy(&self, keys: &Keys, role: &str, policy: &Value) {
        self.iam(
            keys,
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", role),
                ("PolicyName", "policy"),
                ("PolicyDocument", &policy.to_string()),
            ],
        )
        .await;
    }

    /// A session of `role_arn` from a web identity, as GitHub Actions gets one. The
    /// emulator neither checks the token nor the trust policy (tests check trust
    /// themselves); it must be asked before it enforces, since the call is unsigned.
    pub async fn web_identity(&self, role_arn: &str) -> Keys {
        let assumed = self
            .sts_as(&Keys::testing())
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name("github-4711")
            .web_identity_token("a.github.oidc-token")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{role_arn}: {e:?}"));
        let credentials = assumed.credentials.unwrap();
        Keys {
            access_key: credentials.access_key_id,
            secret: credentials.secret_access_key,
            session: Some(credentials.session_token),
        }
    }

    /// From now on every request is checked against its caller's IAM policies.
    pub async fn enforce(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body("0")
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
    }

    /// An object of the emulated S3, parsed as JSON (a Terraform state, a manifest).
    pub async fn json_object(&self, bucket: &str, key: &str) -> serde_json::Value {
        let object = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e}"));
        serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap()
    }

    /// A Terraform lock table (`LockID` hash key), as bootstrap would make it.
    pub async fn lock_table(&self, name: &str) {
        self.lock_table_as(&Keys::testing(), name).await
    }

    pub async fn lock_table_as(&self, keys: &Keys, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        self.dynamodb_as(keys)
            .create_table()
            .table_name(name)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("LockID")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("LockID")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    }
}

/// A policy as the emulator can enforce it: statements of services it checks against the
/// resource `*` (everything but S3, IAM and STS) get that resource, so an action is still
/// allowed or refused by name; their resource scoping is proven statically instead.
pub fn for_emulator(policy: &Value) -> Value {
    let mut policy = policy.clone();
    if let Some(statements) = policy["Statement"].as_array_mut() {
        for statement in statements {
            let actions: Vec<String> = match &statement["Action"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let resource_checked = actions
                .iter()
                .all(|a| a.starts_with("s3:") || a.starts_with("iam:") || a.starts_with("sts:"));
            if !resource_checked {
                statement["Resource"] = Value::String("*".into());
            }
        }
    }
    policy
}
