// format.js: dates, times, sizes and durations for people.

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const shortFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

export const time = (d) => timeFmt.format(d);

export function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

// day names a message's day: Today, Yesterday, or the date.
export function day(d, now = new Date()) {
  if (dayKey(d) === dayKey(now)) return "Today";
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (dayKey(d) === dayKey(y)) return "Yesterday";
  return dayFmt.format(d);
}

// when is a short time for a list: the time today, else the date.
export function when(d, now = new Date()) {
  return dayKey(d) === dayKey(now) ? timeFmt.format(d) : shortFmt.format(d);
}

export function size(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function duration(s) {
  if (!s) return "off";
  if (s % 604800 === 0) return `${s / 604800} w`;
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

// timers offered for disappearing messages, in seconds.
export const timers = [0, 30, 300, 3600, 28800, 86400, 604800];
