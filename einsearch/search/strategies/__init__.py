"""The search strategies, one file each, registered with `@register_strategy` (every module of this
package is imported when a strategy is first looked up)."""
