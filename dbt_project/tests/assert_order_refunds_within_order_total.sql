-- The refunds of an order (fct_order_returns, every platform it was taken back on) add up
-- to no more than the order cost. A shop can break this (refunding an online order at the
-- till that was already refunded online, or the full price of a discounted one): a
-- warning for someone to look at, not a failed build. Returns a row per such order.
{{ config(severity='warn') }}

select
    original_order_key,
    max(original_order_total) as original_order_total,
    sum(refund_amount) as refunded

from {{ ref('fct_order_returns') }}
where original_order_key is not null
group by original_order_key
having sum(refund_amount) > max(original_order_total)
