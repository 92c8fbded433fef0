//! Where backups live: a directory, or `s3://bucket/prefix` (the AWS credential chain;
//! `AWS_ENDPOINT_URL` points it at an emulator). Either way a backup is `<id>/dump.pgc`
//! plus `<id>/manifest.json`, and only a backup whose manifest exists is complete.

use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use tokio::io::AsyncWriteExt;

use super::manifest::Manifest;
use super::store::BackupDir;
use crate::infra::aws_failure;

/// S3 requires parts of at least 5 MiB (all but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

pub enum Location {
    Dir(BackupDir),
    S3(S3Location),
}

pub struct S3Location {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// SSE-KMS with this key; None leaves encryption to the bucket's default.
    kms_key: Option<String>,
}

impl Location {
    pub async fn parse(raw: &str) -> anyhow::Result<Self> {
        let Some(rest) = raw.strip_prefix("s3://") else {
            anyhow::ensure!(
                !raw.contains("://"),
                "`{raw}`: backups go to a directory or to s3://bucket/prefix"
            );
            return Ok(Self::Dir(BackupDir::new(PathBuf::from(raw))));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "`{raw}` names no bucket");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        // Emulators (and some S3-compatible stores) need path-style addressing.
        let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build();
        Ok(Self::S3(S3Location {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            kms_key: None,
        }))
    }

    /// Writes encrypted with a KMS key (SSE-KMS): S3 refuses them when the key is not
    /// usable, instead of silently encrypting with another. Only for S3.
    pub fn encrypted_with(self, kms_key: Option<String>) -> anyhow::Result<Self> {
        match (self, kms_key) {
            (location, None) => Ok(location),
            (Self::S3(mut s3), Some(key)) => {
                s3.kms_key = Some(key);
                Ok(Self::S3(s3))
            }
            (Self::Dir(dir), Some(_)) => anyhow::bail!(
                "--kms-key is for S3 locations; {} is a directory",
                dir.root.display()
            ),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Dir(dir) => dir.root.display().to_string(),
            Self::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Manifest>> {
        match self {
            Self::Dir(dir) => dir.list(),
            Self::S3(s3) => s3.list().await,
        }
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Manifest> {
        match self {
            Self::Dir(dir) => dir.get(id),
            Self::S3(s3) => s3
                .manifest(id)
                .await
                .with_context(|| format!("no backup `{id}` in {}", self.describe())),
        }
    }

    /// The given backup id, or the newest backup's.
    pub async fn resolve(&self, id: Option<String>) -> anyhow::Result<String> {
        if let Some(id) = id {
            return Ok(id);
        }
        let newest = self.list().await?.into_iter().next();
        newest
            .map(|m| m.id)
            .with_context(|| format!("no backups in {}", self.describe()))
    }

    pub async fn save(&self, manifest: &Manifest) -> anyhow::Result<()> {
        match self {
            Self::Dir(dir) => dir.save(manifest),
            Self::S3(s3) => {
                s3.put(
                    &s3.key(&manifest.id, "manifest.json"),
                    serde_json::to_vec_pretty(manifest)?,
                )
                .await
            }
        }
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Self::Dir(dir) => dir.delete(id),
            Self::S3(s3) => {
                for file in ["manifest.json", "dump.pgc"] {
                    s3.client
                        .delete_object()
                        .bucket(&s3.bucket)
                        .key(s3.key(id, file))
                        .send()
                        .await
                        .map_err(|e| {
                            aws_failure(
                                "DeleteObject",
                                "s3:DeleteObject",
                                &s3.url(&s3.key(id, file)),
                                e,
                            )
                        })?;
                }
                Ok(())
            }
        }
    }

    /// The dump as a local file for pg_restore (downloaded from S3 into a temporary file).
    pub async fn fetch_dump(&self, id: &str) -> anyhow::Result<LocalDump> {
        match self {
            Self::Dir(dir) => Ok(LocalDump {
                path: dir.path_of(id).join("dump.pgc"),
                temporary: false,
            }),
            Self::S3(s3) => {
                let path = std::env::temp_dir().join(format!(
                    "shopctl-restore-{}.pgc",
                    uuid::Uuid::new_v4().simple()
                ));
                let dump = LocalDump {
                    path: path.clone(),
                    temporary: true,
                };
                let object = s3
                    .client
                    .get_object()
                    .bucket(&s3.bucket)
                    .key(s3.key(id, "dump.pgc"))
                    .send()
                    .await
                    .map_err(|e| {
                        aws_failure(
                            "GetObject",
                            "s3:GetObject",
                            &s3.url(&s3.key(id, "dump.pgc")),
                            e,
                        )
                    })?;
                let mut body = object.body.into_async_read();
                // The dump holds the data: private, like the backups themselves.
                let mut file = crate::private::create(&path).await?;
                tokio::io::copy(&mut body, &mut file)
                    .await
                    .context("downloading the dump")?;
                file.flush().await?;
                Ok(dump)
            }
        }
    }
}

/// A dump on local disk; a temporary download is removed when dropped.
pub struct LocalDump {
    pub path: PathBuf,
    temporary: bool,
}

impl Drop for LocalDump {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl S3Location {
    /// SSE-KMS when a key is given; else the bucket's default encryption applies (SSE-KMS
    /// with the bucket's key in this platform's buckets).
    fn encryption(&self) -> Option<ServerSideEncryption> {
        self.kms_key.as_ref().map(|_| ServerSideEncryption::AwsKms)
    }

    /// `s3://bucket/key`, for messages.
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn key(&self, id: &str, file: &str) -> String {
        if self.prefix.is_empty() {
            format!("{id}/{file}")
        } else {
            format!("{}/{id}/{file}", self.prefix)
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_server_side_encryption(self.encryption())
            .set_ssekms_key_id(self.kms_key.clone())
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| aws_failure("PutObject", "s3:PutObject", &self.url(key), e))?;
        Ok(())
    }

    async fn manifest(&self, id: &str) -> anyhow::Result<Manifest> {
        let key = self.key(id, "manifest.json");
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| aws_failure("GetObject", "s3:GetObject", &self.url(&key), e))?;
        let bytes = object.body.collect().await?.into_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn list(&self) -> anyhow::Result<Vec<Manifest>> {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                aws_failure("ListObjectsV2", "s3:ListBucket", &self.url(&prefix), e)
            })?;
            for object in page.contents() {
                if let Some(id) = object
                    .key()
                    .and_then(|k| k.strip_prefix(prefix.as_str()))
                    .and_then(|k| k.strip_suffix("/manifest.json"))
                {
                    ids.push(id.to_owned());
                }
            }
        }
        let mut manifests = Vec::new();
        for id in ids {
            manifests.push(self.manifest(&id).await?);
        }
        manifests.sort_by_key(|m| std::cmp::Reverse(m.created_at));
        Ok(manifests)
    }

    /// Starts a server-side-encrypted multipart upload of a backup's dump.
    pub(super) async fn upload(&self, id: &str) -> anyhow::Result<MultipartUpload<'_>> {
        let key = self.key(id, "dump.pgc");
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .set_server_side_encryption(self.encryption())
            .set_ssekms_key_id(self.kms_key.clone())
            .send()
            .await
            .map_err(|e| {
                aws_failure("CreateMultipartUpload", "s3:PutObject", &self.url(&key), e)
            })?;
        let upload_id = started
            .upload_id()
            .context("S3 returned no upload id")?
            .to_owned();
        Ok(MultipartUpload {
            location: self,
            key,
            upload_id,
            buffer: Vec::with_capacity(PART_SIZE),
            parts: Vec::new(),
        })
    }

    pub(super) async fn put_manifest(&self, manifest: &Manifest) -> anyhow::Result<()> {
        self.put(
            &self.key(&manifest.id, "manifest.json"),
            serde_json::to_vec_pretty(manifest)?,
        )
        .await
    }
}

/// The dump streaming into S3 part by part: never all in memory, never on disk.
pub struct MultipartUpload<'a> {
    location: &'a S3Location,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
}

impl MultipartUpload<'_> {
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= PART_SIZE {
            self.flush_part().await?;
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> anyhow::Result<()> {
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE));
        let s3 = self.location;
        let uploaded = s3
            .client
            .upload_part()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| aws_failure("UploadPart", "s3:PutObject", &s3.url(&self.key), e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Completes the upload: only now does the object exist.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.flush_part().await?;
        }
        let s3 = self.location;
        s3.client
            .complete_multipart_upload()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                aws_failure(
                    "CompleteMultipartUpload",
                    "s3:PutObject",
                    &s3.url(&self.key),
                    e,
                )
            })?;
        Ok(())
    }

    /// Abandons the upload: S3 discards the parts, and no object appears.
    pub async fn abort(self) {
        let s3 = self.location;
        let _ = s3
            .client
            .abort_multipart_upload()
            .bucket(&s3.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
    }
}
