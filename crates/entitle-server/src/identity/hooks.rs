//! What the domains above identity do when an account changes. `app.rs` wires them at
//! start-up, so identity tells the others without calling up the stack.

use std::{future::Future, pin::Pin};

use crate::{
    db::{DbError, Tx},
    identity::store::AccountRow,
};

pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DbError>> + Send + 'a>>;

/// Runs inside the transaction that changes the account, with the account as it is after
/// the change and the time of it.
pub type AccountHook = for<'a> fn(&'a mut Tx, &'a AccountRow, i64) -> HookFuture<'a>;

#[derive(Clone, Default)]
pub struct AccountHooks {
    /// Every sign-in of the account ends (its password or address changed): what other
    /// domains sign it in with ends too, such as the refresh-token grants of clients.
    pub signed_out_everywhere: Vec<AccountHook>,
    /// The account's address or name changed: copies of them elsewhere follow.
    pub details_changed: Vec<AccountHook>,
}

impl AccountHooks {
    pub async fn signed_out_everywhere(
        &self,
        tx: &mut Tx,
        account: &AccountRow,
        now: i64,
    ) -> Result<(), DbError> {
        for hook in &self.signed_out_everywhere {
            hook(tx, account, now).await?;
        }
        Ok(())
    }

    pub async fn details_changed(
        &self,
        tx: &mut Tx,
        account: &AccountRow,
        now: i64,
    ) -> Result<(), DbError> {
        for hook in &self.details_changed {
            hook(tx, account, now).await?;
        }
        Ok(())
    }
}
