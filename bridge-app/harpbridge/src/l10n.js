/**
 * t() and n() of @nextcloud/l10n, with its calls' shape (so the translation
 * tools find the strings), for Vue templates: Vue escapes what it renders, so
 * placeholders are not HTML-escaped here as well (a name with an apostrophe
 * would show as &#39;).
 */
import { n as translatePlural, t as translate } from '@nextcloud/l10n'

const NO_ESCAPE = { escape: false }

export function t(app, text, vars = undefined) {
	return translate(app, text, vars, undefined, NO_ESCAPE)
}

export function n(app, singular, plural, count, vars = undefined) {
	return translatePlural(app, singular, plural, count, vars, NO_ESCAPE)
}
