//! Incomplete multipart uploads on an S3 tier.
//!
//! A writer killed midway through a large object leaves its multipart
//! upload open: invisible to every reader, and billed for its parts until
//! someone aborts it (or a bucket lifecycle rule does). object_store can
//! abort an upload it knows the id of, but has no call that lists them, so
//! this lists them itself: one `GET ?uploads` request under the tier's
//! prefix, signed with object_store's own SigV4 signer and the tier's own
//! credentials, sent with its own HTTP client.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{ClientOptions, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::path::Path;

/// What it takes to list and abort a tier's uploads.
#[derive(Debug)]
pub(crate) struct S3Uploads {
    store: Arc<AmazonS3>,
    bucket: String,
    region: String,
    /// A custom endpoint (an S3-compatible server), addressed path-style.
    endpoint: Option<String>,
    allow_http: bool,
    /// The tier's folder in the bucket.
    prefix: Path,
}

/// One incomplete upload.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    /// The object it would create, in the bucket.
    pub key: String,
    id: String,
    pub initiated: DateTime<Utc>,
}

impl S3Uploads {
    /// The uploads of `store`, built by `builder`, under `prefix` of
    /// `bucket` (the builder knows the bucket only once built).
    pub(crate) fn new(
        builder: &AmazonS3Builder,
        store: Arc<AmazonS3>,
        bucket: &str,
        prefix: Path,
    ) -> Self {
        let value = |key| builder.get_config_value(&key);
        S3Uploads {
            store,
            bucket: bucket.to_string(),
            region: value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into()),
            endpoint: value(AmazonS3ConfigKey::Endpoint),
            allow_http: value(AmazonS3ConfigKey::Client(
                object_store::ClientConfigKey::AllowHttp,
            ))
            .is_some_and(|v| v == "true"),
            prefix,
        }
    }

    /// The path of `key` within the tier, if it is under the tier's folder.
    pub(crate) fn within_tier(&self, key: &str) -> Option<String> {
        match self.prefix.as_ref() {
            "" => Some(key.to_string()),
            prefix => Some(key.strip_prefix(prefix)?.strip_prefix('/')?.to_string()),
        }
    }

    /// The incomplete uploads under the tier's folder.
    pub(crate) async fn list(&self) -> Result<Vec<Upload>, String> {
        let client = ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(self.allow_http))
            .map_err(|e| e.to_string())?;
        let credential =
            (self.store.credentials().get_credential().await).map_err(|e| e.to_string())?;
        let mut uploads = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut url = self.bucket_url()?;
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("uploads", "");
                if !self.prefix.as_ref().is_empty() {
                    query.append_pair("prefix", &format!("{}/", self.prefix));
                }
                if let Some((key, id)) = &marker {
                    query.append_pair("key-marker", key);
                    query.append_pair("upload-id-marker", id);
                }
            }
            let mut request = http::Request::builder()
                .method(http::Method::GET)
                .uri(url.as_str())
                .body(HttpRequestBody::empty())
                .map_err(|e| e.to_string())?;
            AwsAuthorizer::new(&credential, "s3", &self.region).authorize(&mut request, None);
            let response = client.execute(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .bytes()
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&body);
            if !status.is_success() {
                return Err(format!(
                    "listing uploads answered {status}: {}",
                    first_error(&text)
                ));
            }
            let page = parse_uploads(&text);
            uploads.extend(page);
            marker = match element(&text, "IsTruncated").as_deref() {
                Some("true") => Some((
                    element(&text, "NextKeyMarker").unwrap_or_default(),
                    element(&text, "NextUploadIdMarker").unwrap_or_default(),
                )),
                _ => None,
            };
            if marker.is_none() {
                return Ok(uploads);
            }
        }
    }

    /// Aborts `upload`, which frees its parts.
    pub(crate) async fn abort(&self, upload: &Upload) -> Result<(), String> {
        let path = Path::from(upload.key.as_str());
        (self.store.abort_multipart(&path, &upload.id).await).map_err(|e| e.to_string())
    }

    fn bucket_url(&self) -> Result<url::Url, String> {
        let text = match &self.endpoint {
            Some(endpoint) => format!("{}/{}", endpoint.trim_end_matches('/'), self.bucket),
            None => format!("https://{}.s3.{}.amazonaws.com/", self.bucket, self.region),
        };
        url::Url::parse(&text).map_err(|e| format!("the bucket URL {text}: {e}"))
    }
}

/// The uploads of a `ListMultipartUploadsResult`.
fn parse_uploads(xml: &str) -> Vec<Upload> {
    xml.split("<Upload>")
        .skip(1)
        .filter_map(|block| {
            let block = block.split("</Upload>").next()?;
            let initiated = element(block, "Initiated")?;
            Some(Upload {
                key: element(block, "Key")?,
                id: element(block, "UploadId")?,
                initiated: DateTime::parse_from_rfc3339(&initiated)
                    .ok()?
                    .with_timezone(&Utc),
            })
        })
        .collect()
}

/// The text of the first `<name>` element in `xml`, unescaped.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let text = &xml[start..end];
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The message of an S3 error document, without request ids.
fn first_error(xml: &str) -> String {
    element(xml, "Message")
        .or_else(|| element(xml, "Code"))
        .unwrap_or_else(|| xml.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_read_from_the_listing() {
        let xml = "<ListMultipartUploadsResult><Bucket>b</Bucket>\
            <IsTruncated>false</IsTruncated>\
            <Upload><Key>team/noise/.parquet</Key><UploadId>abc&amp;1</UploadId>\
            <Initiated>2026-12-01T10:00:00.000Z</Initiated></Upload>\
            <Upload><Key>team/a&amp;b.parquet</Key><UploadId>def</UploadId>\
            <Initiated>2026-12-02T10:00:00Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let uploads = parse_uploads(xml);
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].key, "team/noise/.parquet");
        assert_eq!(uploads[0].id, "abc&1");
        assert_eq!(uploads[1].key, "team/a&b.parquet");
        assert_eq!(
            uploads[1].initiated.to_rfc3339(),
            "2026-12-02T10:00:00+00:00"
        );
        assert_eq!(element(xml, "IsTruncated").as_deref(), Some("false"));
    }
}
