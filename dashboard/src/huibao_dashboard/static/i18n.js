// Interface text in Chinese (default) and English; the choice is kept in localStorage.

const TEXT = {
  zh: {
    "app.title": "党员教育工作看板",
    "signout": "退出",
    "signin.title": "使用令牌登录",
    "signin.help": "令牌由管理员为您的单位签发；只显示该单位及其下级的数据。",
    "signin.token": "访问令牌",
    "signin.submit": "登录",
    "signin.bad": "令牌无效或已被吊销，请检查后重试。",
    "signin.failed": "无法登录：{msg}",
    "signin.empty": "该令牌没有可查看的单位。",
    "signin.noread": "该令牌没有查看（read）权限，不能登录看板。",
    "scopes": "权限：{list}",
    "scope.report": "上报",
    "scope.read": "查看",
    "scope.approve": "审核",
    "scope.admin": "管理",
    "roots.title": "可查看的单位",
    "all": "全部单位",
    "month": "月份",
    "quarter": "季度",
    "rank.by": "排名指标",
    "rank.text": "在 {parent} 的 {of} 个下级中排名第 {rank}（{metric}：{value}）",
    "rank.none": "在 {parent} 的 {of} 个下级中暂无排名（{metric} 无数据）",
    "rank.hidden": "同级排名：上级单位不在本令牌的查看范围内",
    "rank.root": "同级排名：顶级单位无同级",
    "csv": "导出 CSV",
    "children.title": "下级单位主题党日完成情况",
    "children.none": "没有下级单位。",
    "heatmap.title": "全年完成率热力图",
    "heatmap.help": "每格为当月已开展 / 应开展支部数；灰色为尚无数据的月份。",
    "missing.title": "未开展单位",
    "late.title": "逾期上报单位",
    "list.none": "无",
    "list.more": "仅显示前 {shown} 个，共 {total} 个；完整名单请导出 CSV。",
    "trends.title": "主要指标月度趋势（近 12 个月）",
    "feedback.title": "季度反馈",
    "feedback.none": "{quarter} 的季度反馈尚未下发。",
    "feedback.unavailable": "季度反馈暂不可用：{msg}",
    "feedback.issued": "下发时间：{at}",
    "feedback.metrics": "指标",
    "feedback.attention": "需要关注的下级单位",
    "feedback.ranks": "同级排名",
    "feedback.months": "各月主题党日",
    "feedback.noattention": "无需要关注的下级单位。",
    "load.failed": "加载失败：{msg}",
    "back": "返回本单位",
    "loading": "加载中…",
    "footer": "数据来自汇报 rollup 查询接口与 scheduler 季度反馈。",
    "col.name": "单位",
    "col.id": "编号",
    "col.parent": "上级",
    "col.path": "路径",
    "col.expected": "应开展",
    "col.held": "已开展",
    "col.on_time": "按时",
    "col.late": "逾期",
    "col.missing": "未开展",
    "col.ratio": "完成率",
    "col.attendance": "参会率",
    "col.rank": "排名",
    "col.reported_at": "上报时间",
    "col.metric": "指标",
    "col.value": "本季度",
    "col.previous": "上季度",
    "col.change": "变化",
    "col.period": "月份",
    "col.reasons": "原因",
    "col.of": "同级数",
    "level.city": "市",
    "level.county": "县（区）",
    "level.township": "乡镇（街道）",
    "level.branch": "党支部",
    "m.party_day.expected": "应开展主题党日",
    "m.party_day.held": "已开展主题党日",
    "m.party_day.on_time": "按时上报",
    "m.party_day.late": "逾期上报",
    "m.party_day.unexpected": "非应开展单位上报",
    "m.party_day.attendees": "参会人数",
    "m.party_day.attendance_rate": "主题党日参会率",
    "m.party_day.reporting_rate": "主题党日开展率",
    "m.party_day.on_time_rate": "按时上报率",
    "m.lesson.delivered": "党课场次",
    "m.lesson.audience": "党课听课人次",
    "m.lesson.minutes": "党课时长（分钟）",
    "m.training.sessions": "培训班次",
    "m.training.participants": "培训人次",
    "m.training.person_hours": "培训人学时",
    "m.outreach.sessions": "宣讲场次",
    "m.outreach.audience": "宣讲受众",
    "m.outreach.attendance_rate": "宣讲到课率",
    "m.outreach.satisfaction_rate": "宣讲满意率",
    "m.outreach.good_rate": "宣讲好评率",
    "m.volunteer.volunteers": "志愿者人次",
    "m.volunteer.served": "服务群众人次",
    "m.volunteer.hours": "志愿服务时长（小时）",
    "m.feedback.collected": "收集意见建议",
    "m.feedback.resolved": "已解决意见建议",
    "m.feedback.resolution_rate": "意见建议解决率",
    "m.screening.held": "放映场次",
    "m.screening.audience": "观影人次",
    "m.points.awarded": "积分",
    "m.orgunits.branches": "党支部数",
    "m.members.total": "党员数",
  },
  en: {
    "app.title": "Party-member education dashboard",
    "signout": "Sign out",
    "signin.title": "Sign in with a token",
    "signin.help": "The administrator issues a token for your unit; you see that unit and the units below it.",
    "signin.token": "Access token",
    "signin.submit": "Sign in",
    "signin.bad": "Unknown or revoked token. Please check it and try again.",
    "signin.failed": "Cannot sign in: {msg}",
    "signin.empty": "This token has no unit to show.",
    "signin.noread": "This token lacks the read scope: it cannot open the dashboard.",
    "scopes": "Scopes: {list}",
    "scope.report": "report",
    "scope.read": "read",
    "scope.approve": "approve",
    "scope.admin": "admin",
    "roots.title": "Units you can see",
    "all": "All units",
    "month": "Month",
    "quarter": "Quarter",
    "rank.by": "Rank by",
    "rank.text": "Rank {rank} of {of} under {parent} ({metric}: {value})",
    "rank.none": "Not ranked among the {of} units under {parent} ({metric} has no value)",
    "rank.hidden": "Rank among siblings: the parent unit is outside this token's view",
    "rank.root": "Rank among siblings: a top-level unit has no siblings",
    "csv": "Export CSV",
    "children.title": "Party Day completeness of the units below",
    "children.none": "No units below.",
    "heatmap.title": "Completeness heatmap for the year",
    "heatmap.help": "Each cell is branches that held the Party Day / branches expected that month; grey months have no data yet.",
    "missing.title": "Missing",
    "late.title": "Reported late",
    "list.none": "None",
    "list.more": "Showing the first {shown} of {total}; export CSV for the full list.",
    "trends.title": "Key metrics by month (last 12 months)",
    "feedback.title": "Quarterly feedback",
    "feedback.none": "The feedback for {quarter} has not been issued yet.",
    "feedback.unavailable": "The quarterly feedback is unavailable: {msg}",
    "feedback.issued": "Issued at {at}",
    "feedback.metrics": "Metrics",
    "feedback.attention": "Units that need attention",
    "feedback.ranks": "Rank among siblings",
    "feedback.months": "Party Day by month",
    "feedback.noattention": "No unit below needs attention.",
    "load.failed": "Could not load: {msg}",
    "back": "Back to your unit",
    "loading": "Loading…",
    "footer": "Data from Huibao's rollup query API and the scheduler's quarterly feedback.",
    "col.name": "Unit",
    "col.id": "Id",
    "col.parent": "Parent",
    "col.path": "Path",
    "col.expected": "Expected",
    "col.held": "Held",
    "col.on_time": "On time",
    "col.late": "Late",
    "col.missing": "Missing",
    "col.ratio": "Completeness",
    "col.attendance": "Attendance",
    "col.rank": "Rank",
    "col.reported_at": "Reported at",
    "col.metric": "Metric",
    "col.value": "This quarter",
    "col.previous": "Previous",
    "col.change": "Change",
    "col.period": "Month",
    "col.reasons": "Reasons",
    "col.of": "Siblings",
    "level.city": "City",
    "level.county": "County",
    "level.township": "Township",
    "level.branch": "Branch",
    "m.party_day.expected": "Party Days expected",
    "m.party_day.held": "Party Days held",
    "m.party_day.on_time": "Reported on time",
    "m.party_day.late": "Reported late",
    "m.party_day.unexpected": "Reported, not expected",
    "m.party_day.attendees": "Attendees",
    "m.party_day.attendance_rate": "Party Day attendance",
    "m.party_day.reporting_rate": "Party Day reporting rate",
    "m.party_day.on_time_rate": "On-time rate",
    "m.lesson.delivered": "Party lessons",
    "m.lesson.audience": "Lesson audience",
    "m.lesson.minutes": "Lesson minutes",
    "m.training.sessions": "Training sessions",
    "m.training.participants": "Training participants",
    "m.training.person_hours": "Training person-hours",
    "m.outreach.sessions": "Outreach lectures",
    "m.outreach.audience": "Outreach audience",
    "m.outreach.attendance_rate": "Outreach attendance",
    "m.outreach.satisfaction_rate": "Outreach satisfaction",
    "m.outreach.good_rate": "Outreach rated good",
    "m.volunteer.volunteers": "Volunteers",
    "m.volunteer.served": "People served",
    "m.volunteer.hours": "Volunteer hours",
    "m.feedback.collected": "Feedback collected",
    "m.feedback.resolved": "Feedback resolved",
    "m.feedback.resolution_rate": "Feedback resolution",
    "m.screening.held": "Screenings",
    "m.screening.audience": "Screening audience",
    "m.points.awarded": "Points",
    "m.orgunits.branches": "Branches",
    "m.members.total": "Members",
  },
};

const KEY = "huibao.lang";
let lang = localStorage.getItem(KEY) === "en" ? "en" : "zh";

/** The current language, "zh" or "en". */
export function language() {
  return lang;
}

/** Switch language, remember it, and re-label the static parts of the page. */
export function setLanguage(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem(KEY, lang);
  applyStatic();
}

/** The text for `key` in the current language with `{name}` placeholders filled in. */
export function t(key, vars = {}) {
  const text = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Metric names in the catalogue's order (the order tables list them in). */
export const METRIC_ORDER = Object.keys(TEXT.zh).filter((k) => k.startsWith("m.")).map((k) => k.slice(2));

/** A metric's label, e.g. "party_day.held" -> "已开展主题党日". */
export function metricLabel(metric) {
  return t(`m.${metric}`);
}

/** An org-unit level's label. */
export function levelLabel(level) {
  const key = `level.${level}`;
  const text = t(key);
  return text === key ? level : text;
}

/** Re-label every element carrying data-i18n, and the page's language attributes. */
export function applyStatic() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = lang === "zh" ? "汇报 · 党员教育工作看板" : "Huibao · Party-member education dashboard";
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  const toggle = document.getElementById("lang-toggle");
  if (toggle) toggle.textContent = lang === "zh" ? "English" : "中文";
}
