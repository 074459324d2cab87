//! Creating a child object, and what the API server's answer means for the
//! parent: created (or already there and ours), refused for good (the
//! parent's failure, reported with the server's own message), or a
//! transient error (the reconcile fails and is retried with backoff).

use std::fmt::Debug;

use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::create_params;
use super::ownership::{holder, is_controlled_by};
use super::{describe, Error, KubeResultExt};
use crate::engine::refusal::Refusal;
use crate::engine::text::truncate;

/// Longest server message kept in a refusal (the stage message is cut
/// again to fit status).
const MAX_REFUSAL_BYTES: usize = 600;

/// Whether an API status code means the request will never succeed as it
/// is: 4xx, except 401 (the operator's own credentials, not the object),
/// 408 (timeout), 409 (conflict, see [`create_child`]) and 429 (throttled).
/// 400 BadRequest, 403 Forbidden (quota, Pod Security, admission webhooks),
/// 404 (namespace gone) and 422 Invalid are permanent.
pub fn is_permanent(code: u16) -> bool {
    (400..500).contains(&code) && !matches!(code, 401 | 408 | 409 | 429)
}

/// Creates `child`, controlled by `owner_uid`. `Ok(None)`: it exists now and
/// is ours (a 409 for a child we own is a retried create). `Ok(Some(_))`:
/// refused for good, or the name is held by an object with another
/// controller, which Gantry never adopts nor deletes. `Err`: try again later.
pub async fn create_child<K>(api: &Api<K>, child: &K, owner_uid: &str) -> Result<Option<Refusal>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = child.meta().name.clone().unwrap_or_default();
    let object = || describe::<K>(child.meta().namespace.as_deref(), &name);
    let status = match api.create(&create_params(), child).await {
        Ok(_) => return Ok(None),
        Err(kube::Error::Api(status)) => status,
        Err(e) => return Err(e).applying("create", object),
    };
    if status.code == 409 {
        return match api.get_opt(&name).await.observing(|| format!("the holder of {}", object()))? {
            Some(existing) if is_controlled_by(existing.meta(), owner_uid) => Ok(None),
            Some(existing) => Ok(Some(Refusal {
                conflict: true,
                message: format!(
                    "{} {name} already exists and belongs to someone else ({}); Gantry neither adopts nor deletes it",
                    K::kind(&()),
                    holder(existing.meta()),
                ),
            })),
            // Deleted in between: the next reconcile creates it.
            None => Err(kube::Error::Api(status)).applying("create", object),
        };
    }
    if is_permanent(status.code) {
        let message = if status.message.is_empty() { format!("HTTP {}", status.code) } else { status.message.clone() };
        return Ok(Some(Refusal { conflict: false, message: truncate(&message, MAX_REFUSAL_BYTES) }));
    }
    Err(kube::Error::Api(status)).applying("create", object)
}

#[cfg(test)]
mod tests {
    use super::is_permanent;

    #[test]
    fn client_errors_are_permanent_but_expired_credentials_timeouts_conflicts_and_throttling_are_not() {
        for code in [400, 403, 404, 422] {
            assert!(is_permanent(code), "{code}");
        }
        for code in [401, 408, 409, 429, 500, 503, 504] {
            assert!(!is_permanent(code), "{code}");
        }
    }
}
