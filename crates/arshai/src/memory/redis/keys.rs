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
//! {prefix}:{index}:lru          sorted set: "<tenant>:<id>" -> last write ms (global LRU)
//! {prefix}:{index}:t:<tenant>   sorted set, all scores 0: the tenant's raw ids (listing)
//! ```
//!
//! Inside the tag, the tenant and the id are escaped ([`escape`]) so that neither contains
//! `{`, `}` or `:`: the tag ends where it should, and `<tenant>:<id>` splits at its only
//! unescaped `:`. Ids are otherwise kept as they are (Redis keys are binary safe).

use super::super::ConversationKey;

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
    /// The member naming this conversation in the LRU index: `<tenant>:<raw id>`.
    pub(crate) lru_member: String,
    /// The tenant's listing index.
    pub(crate) tenant_index: String,
}

impl KeyLayout {
    /// A layout under `prefix`, which must not contain `{` or `}` (it would move the tag).
    pub(crate) fn new(prefix: &str) -> Result<Self, String> {
        if prefix.contains(['{', '}']) {
            return Err("memory.key_prefix must not contain '{' or '}'".to_owned());
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The keys of `key`.
    pub(crate) fn conversation(&self, key: &ConversationKey) -> ConversationKeys {
        let tenant = escape(&key.tenant);
        let tag = format!("{}:{{{}:{}}}", self.prefix, tenant, escape(key.id.as_str()));
        ConversationKeys {
            hash: format!("{tag}:h"),
            messages: format!("{tag}:m"),
            ops: format!("{tag}:o"),
            lease: format!("{tag}:l"),
            lru_member: format!("{tenant}:{}", key.id.as_str()),
            tenant_index: self.tenant_index(&key.tenant),
        }
    }

    /// The global LRU index.
    pub(crate) fn lru_index(&self) -> String {
        format!("{}:{{index}}:lru", self.prefix)
    }

    /// The listing index of `tenant`.
    pub(crate) fn tenant_index(&self, tenant: &str) -> String {
        format!("{}:{{index}}:t:{}", self.prefix, escape(tenant))
    }

    /// The prefix the LRU script puts before an escaped tenant to name its listing index.
    pub(crate) fn tenant_index_prefix(&self) -> String {
        format!("{}:{{index}}:t:", self.prefix)
    }

    /// The prefix of a conversation's keys, from its LRU member (`<tenant>:<raw id>`).
    pub(crate) fn keys_of_member(&self, member: &str) -> Option<(String, String)> {
        let (tenant, id) = member.split_once(':')?;
        let tag = format!("{}:{{{}:{}}}", self.prefix, tenant, escape(id));
        Some((unescape(tenant)?, tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ConversationId;

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
        let layout = KeyLayout::new("app").unwrap();
        let id = ConversationId::parse("we:{ird}}: ü".repeat(20)).unwrap();
        let key = ConversationKey::new("ten:{a}nt", id.clone());
        let keys = layout.conversation(&key);
        let tag = slot_tag(&keys.hash);
        for k in [&keys.messages, &keys.ops, &keys.lease] {
            assert_eq!(slot_tag(k), tag);
        }
        assert_eq!(
            tag,
            format!("{}:{}", escape("ten:{a}nt"), escape(id.as_str()))
        );
        let (tenant, prefix) = layout.keys_of_member(&keys.lru_member).unwrap();
        assert_eq!(tenant, "ten:{a}nt");
        assert_eq!(format!("{prefix}:h"), keys.hash);
        assert_eq!(slot_tag(&layout.lru_index()), "index");
        assert_eq!(slot_tag(&keys.tenant_index), "index");
    }

    #[test]
    fn tenants_never_share_keys() {
        let layout = KeyLayout::new("p").unwrap();
        let id = ConversationId::parse("x").unwrap();
        let a = layout.conversation(&ConversationKey::new("a:b", id.clone()));
        let b = layout.conversation(&ConversationKey::new(
            "a",
            ConversationId::parse("b:x").unwrap(),
        ));
        assert_ne!(a.hash, b.hash);
        assert!(KeyLayout::new("bad{").is_err());
    }
}
