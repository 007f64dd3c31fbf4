"""Message catalogue: every user-facing message in Chinese (default) and English."""

from __future__ import annotations

import os

LANGUAGES = ("zh", "en")
_active: str | None = None

# key -> (zh, en); templates use str.format fields.
MESSAGES: dict[str, tuple[str, str]] = {
    # files and archives
    "file_not_found": ("找不到文件 {file}。请检查路径。", "File {file} does not exist. Check the path."),
    "file_empty": ("文件 {file} 是空文件(0 字节)。请重新导出或重新下载。", "File {file} is empty (0 bytes). Export or download it again."),
    "unsupported_format": (
        "无法识别文件 {file} 的格式。支持:zip 压缩的 shapefile、.shp、GeoPackage(.gpkg)、GeoJSON。",
        "Cannot tell the format of {file}. Supported: zipped shapefile, .shp, GeoPackage (.gpkg), GeoJSON.",
    ),
    "not_a_zip": ("文件 {file} 不是有效的 zip 压缩包(或已截断/损坏):{detail}。请重新打包上传。", "File {file} is not a valid zip archive (or it is truncated/corrupt): {detail}. Zip it again and re-upload."),
    "zip_unsafe_path": ("压缩包 {file} 中的条目 {entry} 路径不安全(含 .. 或绝对路径)。请只打包规划文件本身。", "Archive {file} holds entry {entry} with an unsafe path (.. or absolute). Zip only the plan files themselves."),
    "zip_symlink": ("压缩包 {file} 中的条目 {entry} 是符号链接,不予接受。", "Archive {file} holds entry {entry}, a symbolic link, which is refused."),
    "zip_nested": ("压缩包 {file} 中含有嵌套压缩包 {entry}。请解开后直接打包规划文件。", "Archive {file} holds a nested archive {entry}. Unpack it and zip the plan files directly."),
    "zip_too_many": ("压缩包 {file} 有 {count} 个条目,超过上限 {limit}。", "Archive {file} has {count} entries, more than the limit of {limit}."),
    "zip_too_big": ("压缩包 {file} 解压后超过 {limit} 字节上限(疑似压缩炸弹)。", "Archive {file} inflates to more than the {limit}-byte limit (a zip bomb?)."),
    "zip_ratio": ("压缩包 {file} 中的条目 {entry} 压缩比 {ratio:.0f}:1 超过上限 {limit}:1(疑似压缩炸弹)。", "Archive {file} entry {entry} has compression ratio {ratio:.0f}:1, above the limit {limit}:1 (a zip bomb?)."),
    "zip_no_dataset": ("压缩包 {file} 中没有 .shp、.gpkg 或 .geojson 文件。", "Archive {file} holds no .shp, .gpkg or .geojson file."),
    "zip_many_datasets": ("压缩包 {file} 中有多个数据集({names})。请一次只上传一个图层。", "Archive {file} holds several datasets ({names}). Upload one layer at a time."),
    "missing_sidecar": ("shapefile {file} 缺少 {ext} 文件。shapefile 需要 .shp、.shx、.dbf 一起提供。", "Shapefile {file} has no {ext} file. A shapefile needs its .shp, .shx and .dbf together."),
    "dbf_short": ("shapefile {file} 的 .dbf 只有 {records} 条记录,而 .shp 有 {shapes} 个图形。属性表与图形不对应,请重新导出。", "Shapefile {file}: the .dbf has {records} records but the .shp has {shapes} shapes. Attributes and shapes do not match; export it again."),
    "no_features": ("文件 {file} 中没有任何要素。", "File {file} holds no features."),
    "read_failed": ("无法读取文件 {file}:{detail}", "Cannot read {file}: {detail}"),
    "gpkg_layer_choice": ("GeoPackage {file} 有多个图层({names}),请用 --source-layer 指定。", "GeoPackage {file} has several layers ({names}); choose one with --source-layer."),
    "gpkg_layer_missing": ("GeoPackage {file} 中没有图层 {name}(现有:{names})。", "GeoPackage {file} has no layer {name} (it has: {names})."),
    "bad_encoding": ("无法用编码 {encoding} 读取 {file} 的属性:{detail}。请用 --encoding 指定正确编码(如 GBK 或 UTF-8)。", "Cannot read the attributes of {file} as {encoding}: {detail}. Give the right one with --encoding (e.g. GBK or UTF-8)."),
    # geometry
    "mixed_geometry": ("文件 {file} 混合了多种几何类型({types})。一个规划图层只能有一种几何类型。", "File {file} mixes geometry types ({types}). One plan layer has one geometry type."),
    "wrong_geometry": ("文件 {file} 的几何类型是 {got},而图层 {layer} 需要 {expected}(要素 {features})。请检查是否上传到了正确的图层。", "File {file} holds {got} geometries but layer {layer} needs {expected} (features {features}). Check that it was uploaded to the right layer."),
    "unsupported_geometry": ("文件 {file} 的几何类型 {got} 不受支持。", "File {file} has unsupported geometry type {got}."),
    "bad_coordinates": ("文件 {file} 的要素 {features} 含有非有限坐标(NaN、无穷大或 1e300 之类的异常值)。请在 GIS 软件中修复这些要素。", "File {file}: features {features} have non-finite or absurd coordinates (NaN, infinity, 1e300). Fix them in a GIS."),
    "out_of_region": ("文件 {file} 的要素 {features} 位于海南省范围之外(坐标系 {crs})。请检查坐标系是否正确,或用 --crs 指定。", "File {file}: features {features} lie outside Hainan Province (CRS {crs}). Check the CRS or set it with --crs."),
    "all_rejected": ("文件 {file} 的所有要素都被拒绝,没有可入库的要素。", "Every feature of {file} was rejected; nothing can be loaded."),
    # crs
    "crs_unknown": ("无法确定文件 {file} 的坐标系:{detail}。请用 --crs EPSG:nnnn 指定(海南常用 EPSG:4490、4508、4524、4525、4545、4546)。", "Cannot tell the CRS of {file}: {detail}. Set it with --crs EPSG:nnnn (Hainan uses EPSG:4490, 4508, 4524, 4525, 4545, 4546)."),
    "crs_bad_option": ("--crs {value} 不是有效的坐标系:{detail}", "--crs {value} is not a valid CRS: {detail}"),
    # specs
    "spec_invalid": ("配置文件 {file} 无效:{detail}", "Spec file {file} is invalid: {detail}"),
    "spec_unknown_layer": ("未知图层 {layer}。可用图层:{layers}。", "Unknown layer {layer}. Known layers: {layers}."),
    "class_field_missing": ("文件 {file} 中找不到分类字段(尝试过:{tried};现有字段:{fields})。请用 --class-field 指定。", "File {file} has no class field (tried: {tried}; it has: {fields}). Name it with --class-field."),
    # store
    "store_not_initialised": ("存储 {store} 尚未初始化。请先运行 multiplan init。", "Store {store} is not initialised. Run multiplan init first."),
    "store_unreachable": ("无法连接存储 {store}:{detail}", "Cannot reach store {store}: {detail}"),
    "store_outdated": ("存储 {store} 的结构版本 {found} 低于本程序需要的 {supported}。请运行 multiplan init 升级(已有数据保留)。", "Store {store} has schema version {found}, older than the {supported} this program needs. Run multiplan init to migrate it (data is kept)."),
    "store_newer": ("存储 {store} 的结构版本 {found} 比本程序支持的 {supported} 更新。请升级 multiplan。", "Store {store} has schema version {found}, newer than the {supported} this program knows. Upgrade multiplan."),
    "version_not_found": ("图层 {layer} 没有版本 {version}。", "Layer {layer} has no version {version}."),
    "no_versions": ("图层 {layer} 还没有任何版本。", "Layer {layer} has no version yet."),
    "conflict_bad_status": ("未知的冲突状态 {status}。可用状态:{statuses}。", "Unknown conflict status {status}. Statuses: {statuses}."),
    "conflict_bad_transition": ("冲突状态不能从 {current} 改为 {target}。可改为:{allowed}。", "A conflict cannot go from {current} to {target}. Allowed: {allowed}."),
    "conflict_not_found": ("没有冲突 {conflict}。", "There is no conflict {conflict}."),
    # approvals
    "approval_bad_stage": ("未知的审批阶段 {stage}。可用阶段:{stages}。", "Unknown approval stage {stage}. Stages: {stages}."),
    "approval_bad_status": ("未知的审批状态 {status}。可用状态:{statuses}。", "Unknown approval status {status}. Statuses: {statuses}."),
    "approval_bad_code": ("项目代码 {code} 格式不对,应为 2016-460000-xx-xx-xxxxxx(x 为数字)。", "Project code {code} is malformed; it should look like 2016-460000-xx-xx-xxxxxx (x: digits)."),
    "approval_bad_date": ("{field} 的日期 {value} 格式不对,应为 YYYY-MM-DD。", "Date {value} in {field} is malformed; use YYYY-MM-DD."),
    "approvals_bad_encoding": ("无法识别 {file} 的文字编码(既不是 UTF-8 也不是 GBK)。请另存为 UTF-8。", "Cannot tell the text encoding of {file} (neither UTF-8 nor GBK). Save it as UTF-8."),
    "approvals_bad_json": ("{file} 不是有效的审批记录 JSON(第 {line} 行):{detail}", "{file} is not a valid approvals JSON (line {line}): {detail}"),
    "approvals_no_code_column": ("{file} 没有项目代码列(应为 {expected} 之一;现有列:{columns})。", "{file} has no project-code column (one of {expected}; it has: {columns})."),
    "approvals_bad_record": ("这条记录不是一个对象(键值对)。", "This record is not an object (of keys and values)."),
    "approval_duplicate_row": ("项目 {code} 在同一文件中重复出现(第一次在第 {line} 行)。", "Project {code} appears twice in the file (first on line {line})."),
    "approval_missing_field": ("新项目缺少必填字段 {field}。", "A new project lacks the required field {field}."),
    "approval_exists": ("项目 {code} 已存在。请用 transition 修改状态,或重新导入以更新。", "Project {code} already exists. Use transition to change its status, or re-import to update it."),
    "approval_not_found": ("没有项目代码为 {code} 的审批记录。", "There is no approval record with project code {code}."),
    "approval_bad_transition": ("项目 {code} 的状态不能从 {current} 改为 {target}。可改为:{allowed}。", "Approval {code} cannot go from {current} to {target}. Allowed: {allowed}."),
    "approval_reason_required": ("状态变更必须说明理由(--reason)。", "A status change needs a reason (--reason)."),
    "approval_blocked": ("项目 {code} 最近一次用地核查(第 {check} 号)结论为 {verdict},不能直接批准。如确需批准,请记录越权理由和经办人(--override 理由 --officer 姓名)。", "Approval {code}: its latest site check (no. {check}) says {verdict}, so it cannot simply be approved. To approve anyway, record an override with its reason and the officer's name (--override REASON --officer NAME)."),
    "check_not_found": ("没有编号为 {check} 的用地核查记录。", "There is no site check no. {check}."),
    "store_write_failed": ("写入存储 {store} 失败,已回滚,存储未改变:{detail}", "Writing to store {store} failed and was rolled back; the store is unchanged: {detail}"),
}


def set_language(lang: str) -> None:
    """Choose the language of messages for this process."""
    global _active
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {lang!r}")
    _active = lang


def language() -> str:
    """The active language: set_language(), else $MULTIPLAN_LANG, else Chinese."""
    if _active:
        return _active
    env = os.environ.get("MULTIPLAN_LANG", "zh")
    return env if env in LANGUAGES else "zh"


def message(key: str, lang: str | None = None, **params: object) -> str:
    """Render message ``key`` in ``lang`` (default: the active language)."""
    zh, en = MESSAGES[key]
    template = en if (lang or language()) == "en" else zh
    return template.format(**params)
