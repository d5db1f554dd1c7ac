//! DynamoDB capacity as DynamoDB reports it: an interceptor on the DynamoDB client asks
//! every request for `ReturnConsumedCapacity: TOTAL` and adds what each answer reports
//! to the process's [`Meter`]. One place for every call the adapter makes, present or
//! future; a call it does not know is sent as it was and not counted.

use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

use crate::usage::Meter;

#[derive(Debug)]
pub struct CapacityMeter(pub Arc<Meter>);

/// Sets `return_consumed_capacity` on the first input type `$input` is, of those listed.
macro_rules! ask_capacity {
    ($input:expr, $($kind:ty),+) => {
        $(if let Some(input) = $input.downcast_mut::<$kind>() {
            input.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
            return Ok(());
        })+
    };
}

fn total(capacities: &[ConsumedCapacity]) -> f64 {
    capacities.iter().filter_map(ConsumedCapacity::capacity_units).sum()
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "vulnflow capacity meter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        ask_capacity!(
            input,
            GetItemInput,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            QueryInput,
            ScanInput,
            BatchGetItemInput,
            BatchWriteItemInput,
            TransactGetItemsInput,
            TransactWriteItemsInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else { return Ok(()) };
        let one = |capacity: Option<&ConsumedCapacity>| capacity.and_then(ConsumedCapacity::capacity_units);
        let reads = output
            .downcast_ref::<GetItemOutput>()
            .and_then(|o| one(o.consumed_capacity()))
            .or_else(|| output.downcast_ref::<QueryOutput>().and_then(|o| one(o.consumed_capacity())))
            .or_else(|| output.downcast_ref::<ScanOutput>().and_then(|o| one(o.consumed_capacity())))
            .or_else(|| output.downcast_ref::<BatchGetItemOutput>().map(|o| total(o.consumed_capacity())))
            .or_else(|| output.downcast_ref::<TransactGetItemsOutput>().map(|o| total(o.consumed_capacity())));
        if let Some(units) = reads {
            self.0.dynamodb_read(units);
            return Ok(());
        }
        let writes = output
            .downcast_ref::<PutItemOutput>()
            .and_then(|o| one(o.consumed_capacity()))
            .or_else(|| output.downcast_ref::<UpdateItemOutput>().and_then(|o| one(o.consumed_capacity())))
            .or_else(|| output.downcast_ref::<DeleteItemOutput>().and_then(|o| one(o.consumed_capacity())))
            .or_else(|| output.downcast_ref::<BatchWriteItemOutput>().map(|o| total(o.consumed_capacity())))
            .or_else(|| output.downcast_ref::<TransactWriteItemsOutput>().map(|o| total(o.consumed_capacity())));
        if let Some(units) = writes {
            self.0.dynamodb_write(units);
        }
        Ok(())
    }
}
