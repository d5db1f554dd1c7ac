//! The fields a normalizer reads, as a tree of names, and a reader of records that keeps
//! only those. A real Tenable vuln record is about 5 KB, most of it text vulnflow never
//! reads (the plugin's description, references, CPEs, scan details); reading a record
//! through its [`Wanted`] tree skips those bytes without building them, so the record's
//! JSON tree holds only what the normalizer looks at, and every field check and error
//! message stays as it is on the whole record.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// One field a normalizer reads, and, for an object, which of its fields (none: all of it).
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub name: &'static str,
    pub fields: &'static [Wanted],
}

/// A field read whole.
pub const fn whole(name: &'static str) -> Wanted {
    Wanted { name, fields: &[] }
}

/// An object field of which only `fields` are read.
pub const fn part(name: &'static str, fields: &'static [Wanted]) -> Wanted {
    Wanted { name, fields }
}

/// Reads a value keeping, where it is an object, only the `wanted` fields (all of a
/// value when `wanted` is empty). A value of another type than an object is read whole,
/// so that the normalizer sees it and says what is wrong with it.
#[derive(Clone, Copy)]
pub struct Pruned(pub &'static [Wanted]);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.0.is_empty() {
            return serde::Deserialize::deserialize(deserializer);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        while let Some(found) = map.next_key_seed(Key(self.0))? {
            match found {
                Some(wanted) => {
                    kept.insert(wanted.name.to_owned(), map.next_value_seed(Pruned(wanted.fields))?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }
}

/// Reads an object's key as the wanted field it names, if any, without copying it:
/// most keys of a record are not wanted.
struct Key(&'static [Wanted]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static Wanted>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<&'static Wanted>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|wanted| wanted.name == key))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RECORD: &[Wanted] = &[whole("id"), part("plugin", &[whole("name"), part("vpr", &[whole("score")])])];

    fn pruned(record: &Value) -> Value {
        let text = record.to_string();
        Pruned(RECORD).deserialize(&mut serde_json::Deserializer::from_str(&text)).expect("reads")
    }

    #[test]
    fn only_the_wanted_fields_are_kept_at_every_depth() {
        let record = json!({
            "id": 7,
            "description": "long text vulnflow never reads",
            "plugin": { "name": "SSL", "see_also": ["https://example.com"], "vpr": { "score": 6.1, "drivers": {} } },
        });
        assert_eq!(pruned(&record), json!({ "id": 7, "plugin": { "name": "SSL", "vpr": { "score": 6.1 } } }));
    }

    #[test]
    fn a_value_of_an_unexpected_type_is_kept_whole_for_the_normalizer_to_judge() {
        for plugin in [json!("a string"), json!([1, 2]), json!(null), json!(12.5), json!(true)] {
            let record = json!({ "id": "x", "plugin": plugin });
            assert_eq!(pruned(&record), record);
        }
        assert_eq!(pruned(&json!([{ "id": 1 }])), json!([{ "id": 1 }]), "a record that is not an object");
    }
}
