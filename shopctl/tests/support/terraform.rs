//! The Terraform under `terraform/`, read the way Terraform reads it — far enough for tests
//! that check it against the environment files, the rendered manifests and the workflows.
//! A module's `.tf` files are parsed with an HCL parser (hcl-rs); a module instance gets
//! its variables (defaults, then what the caller passes), evaluates its locals, resources,
//! nested module calls and outputs with the functions the repository uses (`templatefile`
//! renders the policy documents under `policies/`, exactly the files Terraform reads).
//! What only AWS knows after an apply (an ARN, an issuer URL) is supplied by `computed`, in
//! the formats AWS documents. An expression that cannot be evaluated (it needs something
//! unknown until apply) is simply absent from the result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression};
use serde_json::{Map, Value, json};

/// The account an instance is evaluated for: what `data.aws_*` sources and computed ARNs
/// say.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub account: String,
    pub region: String,
}

/// Every `.tf` file of one module directory, parsed.
pub struct Module {
    pub dir: PathBuf,
    pub body: Body,
}

impl Module {
    /// A module directory relative to the workspace root (`terraform/modules/iam`).
    pub fn load(relative: &str) -> Self {
        let dir = super::workspace_root().join(relative);
        let mut text = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "tf"))
            .collect();
        files.sort();
        for file in files {
            text.push_str(&std::fs::read_to_string(&file).unwrap());
            text.push('\n');
        }
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self { dir, body }
    }

    /// Blocks such as `resource`, `module`, `variable`, `output`.
    pub fn blocks<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.body.blocks().filter(move |b| b.identifier() == kind)
    }

    /// The types of every resource declared here (not in nested modules).
    pub fn resource_types(&self) -> BTreeSet<String> {
        self.blocks("resource")
            .map(|b| b.labels()[0].as_str().to_string())
            .collect()
    }

    /// `module "name"` calls: name → source directory.
    pub fn calls(&self) -> Vec<(String, PathBuf)> {
        self.blocks("module")
            .map(|b| {
                let source = attribute(b.body(), "source")
                    .and_then(|e| match e {
                        Expression::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .expect("module sources are literal paths");
                (b.labels()[0].as_str().to_string(), self.dir.join(source))
            })
            .collect()
    }
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// One module evaluated with its inputs.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    pub variables: Map<String, Value>,
    pub locals: Map<String, Value>,
    /// type → name → arguments and computed attributes (with `for_each`: key → instance).
    pub resources: BTreeMap<String, Map<String, Value>>,
    /// Nested module name → its instance.
    pub modules: BTreeMap<String, Instance>,
    pub outputs: Map<String, Value>,
}

impl Instance {
    /// Instantiates `module` with `given` variables (the rest from their defaults).
    pub fn new(module: &Module, given: &Value, cloud: &Cloud) -> Self {
        let mut instance = Instance::default();
        for variable in module.blocks("variable") {
            let name = variable.labels()[0].as_str().to_string();
            if let Some(value) = given.get(&name).filter(|v| !v.is_null()) {
                instance.variables.insert(name, value.clone());
            } else if let Some(default) = attribute(variable.body(), "default")
                && let Ok(value) = evaluate(default, &Context::new())
            {
                instance.variables.insert(name, value);
            }
        }
        // Each pass may know more than the last (a resource refers to another, a module
        // to a resource); repeat until nothing new is learned.
        for _ in 0..6 {
            let before = instance.known();
            instance.pass(module, cloud);
            if instance.known() == before {
                break;
            }
        }
        instance
    }

    fn known(&self) -> usize {
        serde_json::to_string(&(
            &self.locals,
            &self.resources,
            &self.outputs,
            self.modules
                .values()
                .map(|m| m.outputs.len())
                .collect::<Vec<_>>(),
        ))
        .map(|s| s.len())
        .unwrap_or(0)
    }

    fn context(&self, module: &Module, cloud: &Cloud) -> Context<'static> {
        let mut ctx = functions();
        ctx.declare_var("var", to_hcl(&Value::Object(self.variables.clone())));
        ctx.declare_var("local", to_hcl(&Value::Object(self.locals.clone())));
        ctx.declare_var(
            "path",
            to_hcl(&json!({"module": module.dir.display().to_string()})),
        );
        ctx.declare_var(
            "data",
            to_hcl(&json!({
                "aws_partition": {"current": {"partition": "aws"}},
                "aws_caller_identity": {"current": {"account_id": cloud.account}},
                "aws_region": {"current": {"name": cloud.region, "region": cloud.region}},
            })),
        );
        let outputs: Map<String, Value> = self
            .modules
            .iter()
            .map(|(name, m)| (name.clone(), Value::Object(m.outputs.clone())))
            .collect();
        ctx.declare_var("module", to_hcl(&Value::Object(outputs)));
        for (kind, resources) in &self.resources {
            ctx.declare_var(kind.clone(), to_hcl(&Value::Object(resources.clone())));
        }
        ctx
    }

    fn pass(&mut self, module: &Module, cloud: &Cloud) {
        for locals in module.blocks("locals") {
            for attr in locals.body().attributes() {
                if let Ok(value) = evaluate(attr.expr(), &self.context(module, cloud)) {
                    self.locals.insert(attr.key().to_string(), value);
                }
            }
        }
        for (name, dir) in module.calls() {
            let call = module
                .blocks("module")
                .find(|b| b.labels()[0].as_str() == name)
                .unwrap();
            let ctx = self.context(module, cloud);
            let arguments = evaluate_body(call.body(), &ctx);
            let nested = Module {
                body: Module::load_dir(&dir).body,
                dir,
            };
            self.modules.insert(
                name,
                Instance::new(&nested, &Value::Object(arguments), cloud),
            );
        }
        for resource in module.blocks("resource") {
            let kind = resource.labels()[0].as_str().to_string();
            let name = resource.labels()[1].as_str().to_string();
            let ctx = self.context(module, cloud);
            let value = if let Some(count) = attribute(resource.body(), "count") {
                // `count`: a list of instances, each with its `count.index`.
                let Ok(n) = evaluate(count, &ctx) else {
                    continue;
                };
                let instances = (0..n.as_u64().unwrap_or(0))
                    .map(|index| {
                        let mut ctx = ctx.clone();
                        ctx.declare_var("count", to_hcl(&json!({"index": index})));
                        let id = format!("{name}-{index}");
                        computed(&kind, &id, evaluate_body(resource.body(), &ctx), cloud)
                    })
                    .collect();
                Value::Array(instances)
            } else {
                match attribute(resource.body(), "for_each") {
                    Some(for_each) => {
                        let Ok(keys) = evaluate(for_each, &ctx) else {
                            continue;
                        };
                        let mut each = Map::new();
                        for (key, value) in each_of(&keys) {
                            let mut ctx = ctx.clone();
                            ctx.declare_var("each", to_hcl(&json!({"key": key, "value": value})));
                            let arguments = evaluate_body(resource.body(), &ctx);
                            let id = format!("{name}-{key}");
                            each.insert(key, computed(&kind, &id, arguments, cloud));
                        }
                        Value::Object(each)
                    }
                    None => computed(&kind, &name, evaluate_body(resource.body(), &ctx), cloud),
                }
            };
            self.resources.entry(kind).or_default().insert(name, value);
        }
        for output in module.blocks("output") {
            if let Some(value) = attribute(output.body(), "value")
                && let Ok(value) = evaluate(value, &self.context(module, cloud))
            {
                self.outputs
                    .insert(output.labels()[0].as_str().to_string(), value);
            }
        }
    }

    /// A resource's evaluated arguments (`type.name`).
    pub fn resource(&self, kind: &str, name: &str) -> &Value {
        self.resources
            .get(kind)
            .and_then(|r| r.get(name))
            .unwrap_or_else(|| panic!("no resource {kind}.{name}"))
    }

    /// Every resource of a type, in this module and the modules it calls, by address.
    pub fn all(&self, kind: &str) -> Vec<(String, Value)> {
        let mut found: Vec<(String, Value)> = self
            .resources
            .get(kind)
            .into_iter()
            .flatten()
            .map(|(name, value)| (format!("{kind}.{name}"), value.clone()))
            .collect();
        for (name, module) in &self.modules {
            found.extend(
                module
                    .all(kind)
                    .into_iter()
                    .map(|(address, v)| (format!("module.{name}.{address}"), v)),
            );
        }
        found
    }
}

/// An IAM role as Terraform declares it, with its inline policy.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub arn: String,
    pub trust: Value,
    pub policy: Value,
}

impl Instance {
    /// Every role with an inline policy, by resource name (`deploy`, `plan`, …).
    pub fn roles(&self) -> BTreeMap<String, Role> {
        let policies = self.all("aws_iam_role_policy");
        self.all("aws_iam_role")
            .into_iter()
            .filter_map(|(address, role)| {
                let name = role["name"].as_str()?.to_string();
                let policy = policies
                    .iter()
                    .find(|(_, p)| p["role"] == name.as_str())
                    .map(|(_, p)| serde_json::from_str(p["policy"].as_str().unwrap()).unwrap())?;
                Some((
                    address.rsplit('.').next().unwrap().to_string(),
                    Role {
                        arn: role["arn"].as_str().unwrap().to_string(),
                        trust: serde_json::from_str(role["assume_role_policy"].as_str().unwrap())
                            .unwrap(),
                        policy,
                        name,
                    },
                ))
            })
            .collect()
    }
}

impl Module {
    fn load_dir(dir: &Path) -> Self {
        let root = super::workspace_root();
        let relative = dir
            .canonicalize()
            .unwrap()
            .strip_prefix(root.canonicalize().unwrap())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        Self::load(&relative)
    }
}

/// `for_each` over a set (strings) or a map.
fn each_of(value: &Value) -> Vec<(String, Value)> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| (v.as_str().unwrap_or_default().to_string(), v.clone()))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

/// The attributes AWS computes for a resource, as its documentation gives their format.
fn computed(kind: &str, resource: &str, mut arguments: Map<String, Value>, cloud: &Cloud) -> Value {
    let (account, region) = (&cloud.account, &cloud.region);
    let field = |f: &str| arguments.get(f).and_then(Value::as_str).map(str::to_string);
    let name = field("name");
    // A bucket's id is its name; most other resources' ids are their names here.
    let id = field("bucket")
        .filter(|_| kind == "aws_s3_bucket")
        .or(name.clone());
    let arn = match kind {
        "aws_iam_role" => name
            .as_ref()
            .map(|n| format!("arn:aws:iam::{account}:role/{n}")),
        "aws_iam_openid_connect_provider" => field("url").map(|u| {
            format!(
                "arn:aws:iam::{account}:oidc-provider/{}",
                u.trim_start_matches("https://")
            )
        }),
        "aws_s3_bucket" => field("bucket").map(|b| format!("arn:aws:s3:::{b}")),
        "aws_ecr_repository" => name
            .as_ref()
            .map(|n| format!("arn:aws:ecr:{region}:{account}:repository/{n}")),
        "aws_eks_cluster" => name
            .as_ref()
            .map(|n| format!("arn:aws:eks:{region}:{account}:cluster/{n}")),
        // A key's id is made up from its resource name (unique in this stack).
        "aws_kms_key" => {
            arguments.insert("key_id".into(), json!(resource));
            Some(format!("arn:aws:kms:{region}:{account}:key/{resource}"))
        }
        // Everything else gets an ARN naming what it is, so references resolve.
        _ => Some(format!("arn:aws:computed:{region}:{account}:{kind}")),
    };
    if kind == "aws_eks_cluster"
        && let Some(name) = &name
    {
        let issuer = format!("https://oidc.eks.{region}.amazonaws.com/id/{name}");
        arguments.insert("identity".into(), json!([{"oidc": [{"issuer": issuer}]}]));
        arguments.insert("endpoint".into(), json!(format!("https://{name}.eks")));
    }
    if let Some(arn) = arn {
        arguments.insert("arn".into(), Value::String(arn));
    }
    // Without a name, an id made up from the resource's own (unique in this stack).
    arguments
        .entry("id")
        .or_insert(Value::String(id.unwrap_or_else(|| resource.to_string())));
    Value::Object(arguments)
}

/// A block body's attributes and nested blocks (as lists), each evaluated when it can be.
fn evaluate_body(body: &Body, ctx: &Context) -> Map<String, Value> {
    let mut values = Map::new();
    for attr in body.attributes() {
        if let Ok(value) = evaluate(attr.expr(), ctx) {
            values.insert(attr.key().to_string(), value);
        }
    }
    for block in body.blocks() {
        let entry = values
            .entry(block.identifier().to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::Object(evaluate_body(block.body(), ctx)));
        }
    }
    values
}

pub fn evaluate(expression: &Expression, ctx: &Context) -> Result<Value, String> {
    let value = expression.evaluate(ctx).map_err(|e| e.to_string())?;
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn to_hcl(value: &Value) -> hcl::Value {
    hcl::to_value(value).expect("JSON is representable in HCL")
}

fn from_hcl(value: &hcl::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The Terraform functions the repository's modules call.
fn functions() -> Context<'static> {
    let mut ctx = Context::new();
    let any = |n: usize| FuncDef::builder().params(vec![ParamType::Any; n]);
    ctx.declare_func(
        "jsonencode",
        any(1).build(|args: FuncArgs| Ok(hcl::Value::from(from_hcl(&args[0]).to_string()))),
    );
    ctx.declare_func("templatefile", any(2).build(templatefile));
    ctx.declare_func(
        "toset",
        any(1).build(|args: FuncArgs| {
            let mut items: Vec<Value> = from_hcl(&args[0]).as_array().cloned().unwrap_or_default();
            items.dedup();
            Ok(to_hcl(&Value::Array(items)))
        }),
    );
    ctx.declare_func(
        "length",
        any(1).build(|args: FuncArgs| {
            let n = match from_hcl(&args[0]) {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(s) => s.chars().count(),
                _ => return Err("length of a non-collection".into()),
            };
            Ok(hcl::Value::from(n as u64))
        }),
    );
    ctx.declare_func(
        "merge",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(|args: FuncArgs| {
                let mut merged = Map::new();
                for arg in args.iter() {
                    if let Value::Object(map) = from_hcl(arg) {
                        merged.extend(map);
                    }
                }
                Ok(to_hcl(&Value::Object(merged)))
            }),
    );
    ctx.declare_func("cidrsubnet", any(3).build(cidrsubnet));
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(|args: FuncArgs| {
                let mut joined = Vec::new();
                for arg in args.iter() {
                    joined.extend(from_hcl(arg).as_array().cloned().unwrap_or_default());
                }
                Ok(to_hcl(&Value::Array(joined)))
            }),
    );
    ctx.declare_func(
        "replace",
        any(3).build(|args: FuncArgs| {
            let text = |i: usize| args[i].as_str().unwrap_or_default().to_string();
            Ok(hcl::Value::from(text(0).replace(&text(1), &text(2))))
        }),
    );
    ctx
}

/// `cidrsubnet(prefix, newbits, netnum)` for IPv4, as Terraform computes it.
fn cidrsubnet(args: FuncArgs) -> Result<hcl::Value, String> {
    let prefix = args[0].as_str().ok_or("cidrsubnet needs a prefix")?;
    let (base, bits) = prefix.split_once('/').ok_or("not a CIDR")?;
    let base: std::net::Ipv4Addr = base.parse().map_err(|_| "not an IPv4 CIDR")?;
    let bits: u32 = bits.parse().map_err(|_| "not a CIDR")?;
    let number = |v: &hcl::Value| v.as_u64().ok_or("cidrsubnet needs numbers");
    let (newbits, netnum) = (number(&args[1])? as u32, number(&args[2])? as u32);
    let length = bits + newbits;
    if length > 32 || netnum >= 1 << newbits {
        return Err(format!(
            "cidrsubnet({prefix}, {newbits}, {netnum}) does not fit"
        ));
    }
    let address = u32::from(base) | (netnum << (32 - length));
    Ok(hcl::Value::from(format!(
        "{}/{length}",
        std::net::Ipv4Addr::from(address)
    )))
}

/// `templatefile(path, vars)`: renders a template file with `vars` (and the functions).
fn templatefile(args: FuncArgs) -> Result<hcl::Value, String> {
    let path = args[0].as_str().ok_or("templatefile needs a path")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let template = hcl::Template::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut ctx = functions();
    if let Value::Object(vars) = from_hcl(&args[1]) {
        for (name, value) in vars {
            ctx.declare_var(name, to_hcl(&value));
        }
    }
    template
        .evaluate(&ctx)
        .map(hcl::Value::from)
        .map_err(|e| format!("{path}: {e}"))
}

/// The root stack of an environment, instantiated with the variables shopctl passes it.
pub fn environment_stack(env: &shopctl::env::Environment) -> Instance {
    let module = Module::load(&format!("terraform/envs/{}", env.name));
    let cloud = Cloud {
        account: env.aws.account_id.clone(),
        region: env.aws.region.clone(),
    };
    Instance::new(
        &module,
        &shopctl::infra::terraform::Workspace::variables(env),
        &cloud,
    )
}

/// An environment of the repository, as shopctl loads it.
pub fn environment(name: &str) -> shopctl::env::Environment {
    let templates = shopctl::templates::Templates::embedded();
    shopctl::env::load(&templates, name, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// An environment's manifests as `shopctl render` makes them (Secret values redacted).
pub fn rendered(env: &shopctl::env::Environment) -> Vec<Value> {
    let templates = shopctl::templates::Templates::embedded();
    shopctl::render::render(&templates, env, &shopctl::render::SecretMode::Redacted)
        .unwrap_or_else(|e| panic!("{}: {e:#}", env.name))
        .into_iter()
        .map(|m| m.value)
        .collect()
}
