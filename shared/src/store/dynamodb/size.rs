//! Item sizes as DynamoDB counts them, so a batch write can refuse an oversized record
//! before writing any of it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::item;
use crate::errors::Result;

/// DynamoDB's limit on one item, names and values together.
pub(super) const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The size DynamoDB bills an item at, by its published rules: names and strings by
/// their UTF-8 length, numbers one byte per two significant digits plus one, lists and
/// maps 3 bytes plus 1 per element.
pub fn item_size<T: Serialize>(value: &T) -> Result<usize> {
    Ok(encoded_size(&item(value)?))
}

pub(super) fn encoded_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    let number_size = |number: &str| {
        let digits = number.trim_start_matches('-').replace('.', "");
        digits.trim_start_matches('0').trim_end_matches('0').len().div_ceil(2) + 1
    };
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::L(values) => 3 + values.iter().map(|value| 1 + value_size(value)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(name, value)| 1 + name.len() + value_size(value)).sum::<usize>(),
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|number| number_size(number)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|blob| blob.as_ref().len()).sum(),
        // BOOL and NULL, and whatever DynamoDB adds later.
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_sized_as_dynamodb_bills_it() {
        #[derive(Serialize)]
        struct Sample {
            name: &'static str,
            count: u32,
            active: bool,
            tags: Vec<&'static str>,
        }
        let sample = Sample { name: "héllo", count: 12_345, active: true, tags: vec!["a", "bc"] };
        // name: 4 + 6 (é is two bytes); count: 5 + 3 (five digits) + 1; active: 6 + 1;
        // tags: 4 + 3 + (1 + 1) + (1 + 2).
        assert_eq!(item_size(&sample).unwrap(), 10 + 9 + 7 + 12);
    }
}
