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
    "approval_no_site": ("审批项目 {code} 没有用地红线记录。请给出用地文件。", "Approval {code} has no site on record. Give a site file."),
    "site_not_polygon": ("项目用地必须是面(多边形),而不是 {got}。", "A project site must be a polygon, not {got}."),
    "site_invalid": ("项目用地图形无效({reason})。请通过 check-site 读入文件(会自动修复),或在 GIS 软件中修复。", "The site geometry is invalid ({reason}). Read it through check-site (which repairs what it can) or fix it in a GIS."),
    # users
    "user_bad_name": ("用户名 {name} 不合规(2–64 个字母、数字或 . - _ @)。", "User name {name} is not allowed (2-64 letters, digits or . - _ @)."),
    "user_bad_role": ("未知角色 {role}。可用角色:{roles}。", "Unknown role {role}. Roles: {roles}."),
    "user_short_password": ("密码至少需要 {minimum} 个字符。", "A password needs at least {minimum} characters."),
    "user_exists": ("用户 {name} 已存在。", "User {name} already exists."),
    "user_not_found": ("没有用户 {name}。", "There is no user {name}."),
    "site_nothing_given": ("没有给出用地范围:请绘制、上传文件或粘贴坐标。", "No site was given: draw it, upload a file or paste coordinates."),
    "site_bad_use": ("未知的项目类型 {use}。可用:{uses}。", "Unknown project use {use}. Uses: {uses}."),
    "store_write_failed": ("写入存储 {store} 失败,已回滚,存储未改变:{detail}", "Writing to store {store} failed and was rolled back; the store is unchanged: {detail}"),
    # site input
    "site_unsupported_format": ("无法识别用地红线文件 {file} 的格式。支持:GeoJSON(.geojson/.json)、WKT(.wkt/.txt)、shapefile(.shp 或 zip 压缩包)、KML/KMZ、DXF、界址点坐标表(.csv/.txt)。请另存为其中一种格式。", "Cannot tell the format of site file {file}. Supported: GeoJSON (.geojson/.json), WKT (.wkt/.txt), shapefile (.shp or zipped), KML/KMZ, DXF, boundary-point table (.csv/.txt). Save it in one of these."),
    "site_empty": ("{file} 中没有用地红线(没有要素,或几何为空)。请确认导出了红线本身。", "{file} holds no site boundary (no features, or empty geometry). Check that the red line itself was exported."),
    "site_wrong_geometry": ("{file} 中含有不能构成用地范围的几何:{got}。用地红线必须是闭合的面;请导出为面(多边形)或闭合线,或改用界址点坐标表。", "{file} holds geometry that cannot be a site: {got}. A site boundary must be closed polygons; export it as polygons (or closed lines), or give the boundary-point table."),
    "site_dxf_no_ring": ("DXF 文件 {file} 中没有闭合的多段线或填充(只有 {count} 条未闭合的线)。请在 CAD 中把红线多段线闭合(PEDIT → 闭合)后重新导出。", "DXF {file} holds no closed polyline or hatch (only {count} open lines). Close the red-line polyline in CAD (PEDIT → Close) and export again."),
    "site_few_points": ("{file} 的第 {ring} 环只有 {count} 个不同的点,至少需要 3 个。请检查是否漏行或点重复。", "{file}: ring {ring} has only {count} distinct points; a ring needs at least 3. Check for missing rows or repeated points."),
    "site_ring_no_area": ("{file} 的第 {ring} 环不围成任何面积(各点在一条直线上)。请检查坐标。", "{file}: ring {ring} encloses no area (its points lie on one line). Check the coordinates."),
    "site_bad_coordinates": ("{file} 的第 {rings} 环含有非有限坐标(NaN 或无穷大)。请在 GIS 中修复这些点后重新导出。", "{file}: ring(s) {rings} have non-finite coordinates (NaN or infinity). Fix those points in a GIS and export again."),
    "site_crs_unknown": ("无法确定 {file} 的坐标系:坐标范围 {bounds} 不对应海南常用的任何 CGCS2000 坐标系。请用 --crs EPSG:nnnn 指定(常用 4490、4524、4525、4545、4546)。", "Cannot tell the CRS of {file}: the coordinates {bounds} match no CGCS2000 CRS used in Hainan. Set it with --crs EPSG:nnnn (usually 4490, 4524, 4525, 4545 or 4546)."),
    "site_out_of_region": ("{file} 的用地范围不在海南省内(按坐标系 {crs},坐标 {source_bounds} 换算为经纬度 {bounds})。请检查坐标系是否正确(可用 --crs 指定);如是界址点坐标表,请检查 X(北坐标)与 Y(东坐标)是否颠倒。", "The site in {file} lies outside Hainan Province (in CRS {crs}, coordinates {source_bounds} are lon/lat {bounds}). Check the CRS (set it with --crs); for a boundary-point table, check that X (northing) and Y (easting) are not exchanged."),
    "site_self_intersection": ("{file} 的第 {ring} 环自相交或自接触({points},位于 {location}),修复后用地会分裂成 {pieces} 块(如“8”字形)。请按正确顺序连接界址点后重新提交。", "{file}: ring {ring} crosses or touches itself ({points}, at {location}), so the site would fall apart into {pieces} pieces (a bow-tie). Put the boundary points in the right order and submit again."),
    "site_repair_area": ("{file} 的第 {ring} 环自相交({points},位于 {location}),自动修复会使面积改变 {percent:.1f}%(超过 1%),不予修复。请检查界址点顺序后重新提交。", "{file}: ring {ring} crosses itself ({points}, at {location}); repairing it would change the area by {percent:.1f}% (more than 1%), so it is not repaired. Check the order of the boundary points and submit again."),
    "site_too_large": ("{file} 的用地面积为 {area:.1f} 平方公里,超过 {limit:.0f} 平方公里的合理上限,很可能是坐标系或单位错误。请检查坐标系(--crs)。", "The site in {file} covers {area:.1f} km², more than the {limit:.0f} km² sanity limit: probably a wrong CRS or unit. Check the CRS (--crs)."),
    "site_table_bad_row": ("界址点坐标表 {file} 第 {lines} 行无法读取(如“{text}”)。每行应为 点号, X(北坐标), Y(东坐标),坐标为有限数值。请修正这些行。", "Boundary-point table {file}: line(s) {lines} cannot be read (e.g. \"{text}\"). Each row must be point number, X (northing), Y (easting) with finite numbers. Fix those lines."),
    "site_encoding": ("{file} 既不是 UTF-8 也不是 GBK 编码的文本。请另存为 UTF-8 文本。", "{file} is neither UTF-8 nor GBK text. Save it as UTF-8 text."),
    "site_text_unreadable": ("{file} 不是有效的 WKT 或 GeoJSON:{detail}。请检查文本是否完整。", "{file} is not valid WKT or GeoJSON: {detail}. Check that the text is complete."),
    "site_zip_no_site": ("压缩包 {file} 中没有用地红线文件(.shp、.geojson、.kml、.dxf、.wkt 或界址点坐标表)。", "Archive {file} holds no site file (.shp, .geojson, .kml, .dxf, .wkt or a boundary-point table)."),
    "site_zip_many": ("压缩包 {file} 中有多个用地红线文件({names})。请一次只提交一个。", "Archive {file} holds several site files ({names}). Submit one at a time."),
    "site_crs_option": ("坐标系 {crs}:由 --crs 指定。", "CRS {crs}: set with --crs."),
    "site_crs_declared": ("坐标系 {crs}:取自文件({how})。", "CRS {crs}: declared by the file ({how})."),
    "site_crs_guessed": ("坐标系 {crs} 是根据坐标数值推断的({how}),请核实;如不正确请用 --crs 指定。", "CRS {crs} was recognised from the coordinates ({how}); check it, and set it with --crs if wrong."),
    "site_crs_unusable": ("文件声明的坐标系无法识别({how}),改为根据坐标推断。", "The CRS the file declares cannot be read ({how}); it is recognised from the coordinates instead."),
    "site_note_axes": ("坐标表的 {first} 列是东坐标、{second} 列是北坐标(与测量习惯 X=北 相反),已按数值大小判断并交换。", "The table's {first} column holds eastings and {second} northings (against the surveying convention X = northing); judged from the magnitudes and exchanged."),
    "site_note_closed": ("第 {rings} 环未闭合,已把末点连回首点。", "Ring(s) {rings} were not closed; the last point was joined to the first."),
    "site_note_closed_any": ("有环未闭合,已把末点连回首点。", "Some rings were not closed; their last points were joined to the first."),
    "site_note_repaired": ("第 {ring} 环自相交({points}),已自动修复,面积变化 {percent:.3f}%。", "Ring {ring} crossed itself ({points}) and was repaired; the area changed by {percent:.3f}%."),
    "site_note_duplicate": ("第 {ring} 环与第 {same} 环重合,已忽略。", "Ring {ring} repeats ring {same} and was ignored."),
    "site_note_parts": ("{count} 个地块/部分已合并为一个用地范围。", "{count} parcels or parts were merged into one site."),
    "site_note_dxf_layer": ("只采用了红线图层 {layer} 上的闭合线。", "Only the closed lines on the red-line layer {layer} were used."),
    "site_note_dxf_ignored": ("忽略了 {count} 个不是闭合线的 CAD 对象(文字、未闭合线等)。", "{count} CAD entities that are not closed lines (text, open lines, ...) were ignored."),
    "scheduler_unreachable": ("无法连接 Dask 调度器 {scheduler}:{detail}。请检查地址(如 tcp://主机:8786)以及调度器是否在运行。", "Cannot reach the Dask scheduler {scheduler}: {detail}. Check the address (e.g. tcp://host:8786) and that the scheduler is running."),
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
