//! Spool values in PostgreSQL's binary COPY format.

use std::error::Error;

use bytes::{BufMut as _, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};

use crate::sinks::batch::Cell;
use crate::sinks::columns::Kind;

type BoxError = Box<dyn Error + Sync + Send>;

/// The PostgreSQL type a column of this kind has in our tables.
pub(super) fn pg_type(kind: Kind) -> Type {
    match kind {
        Kind::Text => Type::TEXT,
        Kind::BigInt => Type::INT8,
        Kind::Bool => Type::BOOL,
        Kind::Time => Type::TIMESTAMPTZ,
        Kind::Json => Type::JSONB,
        Kind::Bytes => Type::BYTEA,
    }
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(n) => n.to_sql(ty, out),
            Cell::Bool(b) => b.to_sql(ty, out),
            Cell::Text(text) => text.as_str().to_sql(ty, out),
            Cell::Time(time) => time.to_sql(ty, out),
            Cell::Bytes(bytes) => bytes.as_slice().to_sql(ty, out),
            // The spool keeps JSON as text already; jsonb's binary form is a version byte and
            // that text, so it is sent as is rather than parsed and written again.
            Cell::Json(text) => {
                if *ty == Type::JSONB {
                    out.put_u8(1);
                }
                out.put_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::TEXT,
            Type::INT8,
            Type::BOOL,
            Type::TIMESTAMPTZ,
            Type::JSONB,
            Type::JSON,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let fits = match self {
            Cell::Null => true,
            Cell::Int(_) => *ty == Type::INT8,
            Cell::Bool(_) => *ty == Type::BOOL,
            Cell::Text(_) => *ty == Type::TEXT,
            Cell::Time(_) => *ty == Type::TIMESTAMPTZ,
            Cell::Bytes(_) => *ty == Type::BYTEA,
            Cell::Json(_) => *ty == Type::JSONB || *ty == Type::JSON,
        };
        if !fits {
            // Only the kind, never the value: it may be personal data.
            let kind = match self {
                Cell::Null => "null",
                Cell::Int(_) => "integer",
                Cell::Bool(_) => "boolean",
                Cell::Text(_) => "text",
                Cell::Time(_) => "time",
                Cell::Bytes(_) => "bytes",
                Cell::Json(_) => "JSON",
            };
            return Err(format!("a {kind} value cannot be sent as {ty}").into());
        }
        self.to_sql(ty, out)
    }
}
