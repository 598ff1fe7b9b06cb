# The dashboard (GET / in the daemon): web/*.{html,css,js} and uPlot's dist files, embedded into
# metronome_api as byte arrays (src/api/web_assets.h). uPlot comes from node_modules (pinned in
# package.json and package-lock.json; `npm ci` or scripts/setup.sh installs it); it is never
# fetched at run time.
set(METRONOME_UPLOT_VERSION 1.6.32)
set(uplot_dir ${PROJECT_SOURCE_DIR}/node_modules/uplot)
if(NOT EXISTS ${uplot_dir}/package.json)
  message(FATAL_ERROR "The dashboard needs uPlot ${METRONOME_UPLOT_VERSION} in ${uplot_dir}: "
    "run `npm ci` in ${PROJECT_SOURCE_DIR} (scripts/setup.sh does)")
endif()
file(READ ${uplot_dir}/package.json uplot_package)
string(JSON uplot_version GET "${uplot_package}" version)
if(NOT uplot_version STREQUAL METRONOME_UPLOT_VERSION)
  message(FATAL_ERROR "node_modules/uplot is ${uplot_version}, package.json pins "
    "${METRONOME_UPLOT_VERSION}: run `npm ci`")
endif()

set(web_files
  ${PROJECT_SOURCE_DIR}/web/index.html
  ${PROJECT_SOURCE_DIR}/web/dashboard.css
  ${PROJECT_SOURCE_DIR}/web/dashboard.js
  ${uplot_dir}/dist/uPlot.iife.min.js
  ${uplot_dir}/dist/uPlot.min.css)
string(REPLACE ";" "|" web_files_arg "${web_files}")
set(web_assets_cc ${CMAKE_BINARY_DIR}/generated/web_assets.cc)
add_custom_command(
  OUTPUT ${web_assets_cc}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/generated
  COMMAND ${CMAKE_COMMAND} -DOUTPUT=${web_assets_cc} -DFILES=${web_files_arg}
          -P ${PROJECT_SOURCE_DIR}/web/embed_assets.cmake
  DEPENDS ${web_files} ${PROJECT_SOURCE_DIR}/web/embed_assets.cmake
  COMMENT "Embedding the dashboard's files"
  VERBATIM)
target_sources(metronome_api PRIVATE ${web_assets_cc})
