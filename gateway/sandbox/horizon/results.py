"""Transaction and operation outcomes, their Horizon result codes and the TransactionResult
XDR stellar-core would report for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from stellar_sdk import xdr as sx

from gateway.sandbox.horizon.entries import JSON


@dataclass(slots=True)
class _OpResult:
    kind: str  # our operation kind ("payment", ...) or "unsupported"
    code: str  # Horizon's name, e.g. "op_success", "op_underfunded"
    merged: int = 0  # account_merge: the stroops moved


@dataclass(slots=True)
class _Outcome:
    code: str  # Horizon's name, e.g. "tx_success", "tx_bad_seq"
    fee: int
    ops: list[_OpResult] = field(default_factory=list)
    inner: _Outcome | None = None

    @property
    def successful(self) -> bool:
        return self.code in ("tx_success", "tx_fee_bump_inner_success")

    def result_codes(self) -> JSON:
        codes: JSON = {"transaction": self.code}
        ops = self.ops
        if self.inner is not None:
            codes["inner_transaction"] = self.inner.code
            ops = self.inner.ops
        if ops:
            codes["operations"] = [r.code for r in ops]
        return codes


_TX_CODES: dict[str, sx.TransactionResultCode] = {
    "tx_fee_bump_inner_success": sx.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
    "tx_success": sx.TransactionResultCode.txSUCCESS,
    "tx_failed": sx.TransactionResultCode.txFAILED,
    "tx_too_early": sx.TransactionResultCode.txTOO_EARLY,
    "tx_too_late": sx.TransactionResultCode.txTOO_LATE,
    "tx_missing_operation": sx.TransactionResultCode.txMISSING_OPERATION,
    "tx_bad_seq": sx.TransactionResultCode.txBAD_SEQ,
    "tx_bad_auth": sx.TransactionResultCode.txBAD_AUTH,
    "tx_insufficient_balance": sx.TransactionResultCode.txINSUFFICIENT_BALANCE,
    "tx_no_source_account": sx.TransactionResultCode.txNO_ACCOUNT,
    "tx_insufficient_fee": sx.TransactionResultCode.txINSUFFICIENT_FEE,
    "tx_bad_auth_extra": sx.TransactionResultCode.txBAD_AUTH_EXTRA,
    "tx_internal_error": sx.TransactionResultCode.txINTERNAL_ERROR,
    "tx_not_supported": sx.TransactionResultCode.txNOT_SUPPORTED,
    "tx_fee_bump_inner_failed": sx.TransactionResultCode.txFEE_BUMP_INNER_FAILED,
    "tx_bad_minseq_age_or_gap": sx.TransactionResultCode.txBAD_MIN_SEQ_AGE_OR_GAP,
    "tx_malformed": sx.TransactionResultCode.txMALFORMED,
}
_GENERIC_OP_CODES: dict[str, sx.OperationResultCode] = {
    "op_bad_auth": sx.OperationResultCode.opBAD_AUTH,
    "op_no_source_account": sx.OperationResultCode.opNO_ACCOUNT,
    "op_not_supported": sx.OperationResultCode.opNOT_SUPPORTED,
    "op_too_many_subentries": sx.OperationResultCode.opTOO_MANY_SUBENTRIES,
}
# kind -> (operation type, result class, result code enum, enum prefix, OperationResultTr field)
_OP_XDR: dict[str, tuple[sx.OperationType, type, type, str, str]] = {
    "create_account": (
        sx.OperationType.CREATE_ACCOUNT,
        sx.CreateAccountResult,
        sx.CreateAccountResultCode,
        "CREATE_ACCOUNT",
        "create_account_result",
    ),
    "payment": (
        sx.OperationType.PAYMENT,
        sx.PaymentResult,
        sx.PaymentResultCode,
        "PAYMENT",
        "payment_result",
    ),
    "set_options": (
        sx.OperationType.SET_OPTIONS,
        sx.SetOptionsResult,
        sx.SetOptionsResultCode,
        "SET_OPTIONS",
        "set_options_result",
    ),
    "change_trust": (
        sx.OperationType.CHANGE_TRUST,
        sx.ChangeTrustResult,
        sx.ChangeTrustResultCode,
        "CHANGE_TRUST",
        "change_trust_result",
    ),
    "account_merge": (
        sx.OperationType.ACCOUNT_MERGE,
        sx.AccountMergeResult,
        sx.AccountMergeResultCode,
        "ACCOUNT_MERGE",
        "account_merge_result",
    ),
    "manage_data": (
        sx.OperationType.MANAGE_DATA,
        sx.ManageDataResult,
        sx.ManageDataResultCode,
        "MANAGE_DATA",
        "manage_data_result",
    ),
    "bump_sequence": (
        sx.OperationType.BUMP_SEQUENCE,
        sx.BumpSequenceResult,
        sx.BumpSequenceResultCode,
        "BUMP_SEQUENCE",
        "bump_sequence_result",
    ),
}
# Horizon names whose XDR enum member is not simply the upper-cased remainder.
_ENUM_SUFFIX = {
    "op_already_exists": "ALREADY_EXIST",
    "op_data_name_not_found": "NAME_NOT_FOUND",
    "op_data_invalid_name": "INVALID_NAME",
    "op_seq_num_too_far": "SEQNUM_TOO_FAR",
}


def _op_result_xdr(result: _OpResult) -> sx.OperationResult:
    generic = _GENERIC_OP_CODES.get(result.code)
    if generic is not None or result.kind not in _OP_XDR:
        return sx.OperationResult(generic or sx.OperationResultCode.opNOT_SUPPORTED)
    op_type, result_cls, code_cls, prefix, attr = _OP_XDR[result.kind]
    suffix = _ENUM_SUFFIX.get(result.code, result.code.removeprefix("op_").upper())
    code = getattr(code_cls, f"{prefix}_{suffix}")
    if result.kind == "account_merge" and result.code == "op_success":
        inner = result_cls(code, sx.Int64(result.merged))
    else:
        inner = result_cls(code)
    return sx.OperationResult(
        sx.OperationResultCode.opINNER, sx.OperationResultTr(op_type, **{attr: inner})
    )


def _result_xdr(outcome: _Outcome, inner_hash: bytes | None) -> str:
    """The TransactionResult XDR stellar-core would report for ``outcome``."""

    def op_results(o: _Outcome) -> list[sx.OperationResult] | None:
        if o.code in ("tx_success", "tx_failed"):
            return [_op_result_xdr(r) for r in o.ops]
        return None

    if outcome.inner is not None and inner_hash is not None:
        inner = sx.InnerTransactionResult(
            sx.Int64(outcome.inner.fee),
            sx.InnerTransactionResultResult(
                _TX_CODES[outcome.inner.code], op_results(outcome.inner)
            ),
            sx.InnerTransactionResultExt(0),
        )
        result = sx.TransactionResultResult(
            _TX_CODES[outcome.code],
            inner_result_pair=sx.InnerTransactionResultPair(sx.Hash(inner_hash), inner),
        )
    else:
        result = sx.TransactionResultResult(_TX_CODES[outcome.code], results=op_results(outcome))
    return sx.TransactionResult(sx.Int64(outcome.fee), result, sx.TransactionResultExt(0)).to_xdr()
