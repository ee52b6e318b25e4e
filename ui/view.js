// Small DOM helpers. Data from the server is only ever set as text
// (textContent, attributes), never parsed as HTML.

/** An element `tag` with `props` (className, text, title, dataset, other
 * attributes) and `children` (nodes or strings, added as text). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child);
  }
  return node;
}

/** Words of a PascalCase or camelCase name: "DoNotDisturb" → "Do not disturb". */
export function words(name) {
  if (!name) return "";
  const spaced = name.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/([A-Z])([A-Z][a-z])/g, "$1 $2");
  return spaced.charAt(0).toUpperCase() + spaced.slice(1).toLowerCase();
}

/** The badge colour family of an availability. */
export function tone(availability) {
  switch (availability) {
    case "Available":
    case "AvailableIdle":
      return "green";
    case "Busy":
    case "BusyIdle":
    case "DoNotDisturb":
      return "red";
    case "Away":
    case "BeRightBack":
      return "yellow";
    case "Offline":
      return "grey";
    default:
      return "unknown";
  }
}

/** An availability badge. */
export function badge(availability) {
  return el(
    "span",
    { className: `badge ${tone(availability)}`, dataset: { availability: availability || "" } },
    el("span", { className: "dot", "aria-hidden": "true" }),
    words(availability || "PresenceUnknown"),
  );
}

/** The status message's text, or "" without one. */
export function statusText(presence) {
  const message = presence && presence.statusMessage && presence.statusMessage.message;
  return message && message.content ? message.content : "";
}

/** The work location as words: "Office · building-7". */
export function locationText(presence) {
  const location = presence && presence.workLocation;
  if (!location || !location.workLocationType || ["unknown", "unspecified"].includes(location.workLocationType)) return "";
  const kind = { office: "Office", remote: "Remote", timeOff: "Time off" }[location.workLocationType]
    || words(location.workLocationType);
  return location.placeId ? `${kind} · ${location.placeId}` : kind;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** An RFC 3339 instant relative to `now` ("5 minutes ago"), or "—". */
export function ago(instant, now = Date.now()) {
  if (!instant) return "—";
  const t = Date.parse(instant);
  if (Number.isNaN(t)) return "—";
  const seconds = Math.round((t - now) / 1000);
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [7, "day"],
    [4.35, "week"],
    [12, "month"],
    [Infinity, "year"],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return absolute.format(t);
}

/** An RFC 3339 instant as local date and time, or "—". */
export function when(instant) {
  if (!instant) return "—";
  const t = Date.parse(instant);
  return Number.isNaN(t) ? "—" : absolute.format(t);
}
