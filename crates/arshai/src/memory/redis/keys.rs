//! The Redis key layout.
//!
//! One conversation's keys share a hash tag, so they live in one Cluster slot and one Lua
//! script can change them atomically:
//!
//! ```text
//! {prefix}:{<tenant>:<id>}:h    hash: v (version), c (created ms), u (updated ms),
//!                               w (working memory), x:<key> (metadata)
//! {prefix}:{<tenant>:<id>}:m    list: messages, oldest first, one JSON document each
//! {prefix}:{<tenant>:<id>}:o    sorted set: recent write ids -> version (retry guard)
//! {prefix}:{<tenant>:<id>}:l    string: the turn lease's owner token
//! {prefix}:{<tenant>:<id>}:w    string: set while some turn waits for the lease
//! {prefix}:{<tenant>:<id>}:i    hash: idempotency key -> "<fingerprint>\n<receipt>"
//! {prefix}:{<tenant>:<id>}:j    sorted set: idempotency key -> version (keeps the last 64)
//! {prefix}:{t:<tenant>:<b>}:lru sorted set: <id> -> last use ms (the tenant's LRU, bucket b)
//! {prefix}:{t:<tenant>:<b>}:ids sorted set, all scores 0: raw ids (the tenant's listing)
//! {prefix}:{g:<b>}:lru          sorted set: "<tenant>:<id>" -> last use ms (every tenant)
//! {prefix}:wake                 pub/sub channel: "<tenant>:<id>" of a released lease with waiters
//! ```
//!
//! Inside tags and index members, the tenant and the id are escaped ([`escape`]) so that
//! neither contains `{`, `}` or `:`: the tag ends where it should, and `<tenant>:<id>` splits
//! at its only unescaped `:`. The listing index keeps raw ids (Redis keys are binary safe),
//! so it pages in id order. A conversation's index bucket `b` is a hash of its name modulo
//! the bucket count (1 on standalone and Sentinel; 16 by default on Cluster, so that no one
//! slot takes every write of the fleet).

use super::super::{ConversationId, ConversationKey};

/// Escapes `%`, `{`, `}` and `:` as `%25`, `%7B`, `%7D`, `%3A`; every other character is kept.
///
/// The mapping is injective, so two different ids never share a key.
pub(crate) fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' => out.push_str("%3A"),
            other => out.push(other),
        }
    }
    out
}

/// Reverses [`escape`]; `None` if `escaped` is not its output.
pub(crate) fn unescape(escaped: &str) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "7B" => '{',
            "7D" => '}',
            "3A" => ':',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Builds every key name from the configured prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeyLayout {
    prefix: String,
    buckets: u32,
}

/// The keys of one conversation.
#[derive(Debug, Clone)]
pub(crate) struct ConversationKeys {
    /// The hash of scalar fields.
    pub(crate) hash: String,
    /// The message list.
    pub(crate) messages: String,
    /// The write-id guard.
    pub(crate) ops: String,
    /// The turn lease.
    pub(crate) lease: String,
    /// The waiter flag.
    pub(crate) waiters: String,
    /// The idempotency receipts.
    pub(crate) receipts: String,
    /// The receipts' order.
    pub(crate) receipt_order: String,
    /// The tenant's LRU index (this conversation's bucket).
    pub(crate) tenant_lru: String,
    /// The tenant's listing index (this conversation's bucket).
    pub(crate) tenant_ids: String,
    /// The global LRU index (this conversation's bucket).
    pub(crate) global_lru: String,
    /// The raw id: this conversation's member in the tenant listing.
    pub(crate) raw_id: String,
    /// The escaped id: this conversation's member in the tenant LRU.
    pub(crate) tenant_member: String,
    /// `<escaped tenant>:<escaped id>`: its member in the global LRU and its wake-up notice.
    pub(crate) global_member: String,
    /// What comes before an escaped id to name a conversation tag of this tenant.
    pub(crate) tenant_tag_prefix: String,
}

impl ConversationKeys {
    /// Every key of the conversation's own tag that a write may touch, in script order:
    /// hash, messages, ops, lease, waiters, receipts, receipt order.
    pub(crate) fn own(&self) -> [&str; 7] {
        [
            &self.hash,
            &self.messages,
            &self.ops,
            &self.lease,
            &self.waiters,
            &self.receipts,
            &self.receipt_order,
        ]
    }
}

/// FNV-1a, for index buckets (stable across processes and versions).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl KeyLayout {
    /// A layout under `prefix`, which must not contain `{` or `}` (it would move the tag),
    /// with `buckets` index buckets per tenant and globally.
    pub(crate) fn new(prefix: &str, buckets: u32) -> Result<Self, String> {
        if prefix.contains(['{', '}']) {
            return Err("memory.key_prefix must not contain '{' or '}'".to_owned());
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            buckets: buckets.max(1),
        })
    }

    /// The number of index buckets.
    pub(crate) fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The keys of `key`.
    pub(crate) fn conversation(&self, key: &ConversationKey) -> ConversationKeys {
        let tenant = escape(&key.tenant);
        let id = escape(key.id.as_str());
        let global_member = format!("{tenant}:{id}");
        let bucket = fnv1a(&global_member) % u64::from(self.buckets);
        let tag = format!("{}:{{{global_member}}}", self.prefix);
        ConversationKeys {
            hash: format!("{tag}:h"),
            messages: format!("{tag}:m"),
            ops: format!("{tag}:o"),
            lease: format!("{tag}:l"),
            waiters: format!("{tag}:w"),
            receipts: format!("{tag}:i"),
            receipt_order: format!("{tag}:j"),
            tenant_lru: format!("{}:{{t:{tenant}:{bucket}}}:lru", self.prefix),
            tenant_ids: format!("{}:{{t:{tenant}:{bucket}}}:ids", self.prefix),
            global_lru: self.global_lru(bucket as u32),
            raw_id: key.id.as_str().to_owned(),
            tenant_member: id,
            tenant_tag_prefix: format!("{}:{{{tenant}:", self.prefix),
            global_member,
        }
    }

    /// The global LRU index of `bucket`.
    pub(crate) fn global_lru(&self, bucket: u32) -> String {
        format!("{}:{{g:{bucket}}}:lru", self.prefix)
    }

    /// The listing indexes of `tenant`, one per bucket.
    pub(crate) fn tenant_ids(&self, tenant: &str) -> Vec<String> {
        let tenant = escape(tenant);
        (0..self.buckets)
            .map(|bucket| format!("{}:{{t:{tenant}:{bucket}}}:ids", self.prefix))
            .collect()
    }

    /// What comes before a global member to name its conversation tag.
    pub(crate) fn global_tag_prefix(&self) -> String {
        format!("{}:{{", self.prefix)
    }

    /// The pub/sub channel of wake-up notices.
    pub(crate) fn wake_channel(&self) -> String {
        format!("{}:wake", self.prefix)
    }

    /// The conversation a global member (or wake-up notice) names.
    pub(crate) fn key_of_member(&self, member: &str) -> Option<ConversationKey> {
        let (tenant, id) = member.split_once(':')?;
        let id = ConversationId::parse(unescape(id)?).ok()?;
        Some(ConversationKey::new(unescape(tenant)?, id))
    }

    /// The conversation tag of a global member.
    pub(crate) fn tag_of_member(&self, member: &str) -> String {
        format!("{}:{{{member}}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open + 1..].find('}').unwrap() + open + 1;
        &key[open + 1..close]
    }

    #[test]
    fn escaping_round_trips_and_is_injective() {
        for raw in ["", "plain", "a:b", "{x}", "%7B", "ünï:{ç}%", "::{{}}%%"] {
            let escaped = escape(raw);
            assert!(!escaped.contains(['{', '}', ':']), "{escaped}");
            assert_eq!(unescape(&escaped).as_deref(), Some(raw));
        }
        assert_ne!(escape("%7B"), escape("{"));
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%7"), None);
    }

    #[test]
    fn all_keys_of_a_conversation_share_one_tag_that_names_it() {
        let layout = KeyLayout::new("app", 16).unwrap();
        let id = ConversationId::parse("we:{ird}}: ü".repeat(20)).unwrap();
        let key = ConversationKey::new("ten:{a}nt", id.clone());
        let keys = layout.conversation(&key);
        let tag = slot_tag(&keys.hash);
        for k in keys.own() {
            assert_eq!(slot_tag(k), tag);
        }
        assert_eq!(
            tag,
            format!("{}:{}", escape("ten:{a}nt"), escape(id.as_str()))
        );
        assert_eq!(layout.key_of_member(&keys.global_member), Some(key.clone()));
        assert_eq!(
            format!("{}:h", layout.tag_of_member(&keys.global_member)),
            keys.hash
        );
        assert_eq!(
            format!("{}{}}}:h", keys.tenant_tag_prefix, keys.tenant_member),
            keys.hash
        );
        assert_eq!(slot_tag(&keys.tenant_lru), slot_tag(&keys.tenant_ids));
        assert!(layout.tenant_ids("ten:{a}nt").contains(&keys.tenant_ids));
        assert!(slot_tag(&keys.global_lru).starts_with("g:"));
    }

    #[test]
    fn tenants_never_share_keys() {
        let layout = KeyLayout::new("p", 1).unwrap();
        let id = ConversationId::parse("x").unwrap();
        let a = layout.conversation(&ConversationKey::new("a:b", id.clone()));
        let b = layout.conversation(&ConversationKey::new(
            "a",
            ConversationId::parse("b:x").unwrap(),
        ));
        assert_ne!(a.hash, b.hash);
        assert!(KeyLayout::new("bad{", 1).is_err());
    }
}
