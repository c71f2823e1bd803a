# install.cmake — what `cmake --install` puts beside the programs: the configuration,
# the systemd units and their user, and the manual pages. Included by the top-level
# CMakeLists.txt; the programs install themselves (policyd/, milter/: sbin; admin/: bin).
#
# The units name the programs and the configuration by absolute path, and /etc is not under the
# prefix /usr: both depend on the prefix, which `cmake --install --prefix P` may choose only at
# install time. So install_files.cmake decides them then, not when CMake configures.
include(GNUInstallDirs)

install(FILES ${PROJECT_SOURCE_DIR}/man/postwarden-policyd.8 ${PROJECT_SOURCE_DIR}/man/postwarden-milter.8
              ${PROJECT_SOURCE_DIR}/man/postwarden.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${PROJECT_SOURCE_DIR}/man/postwarden.conf.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

install(CODE "set(POSTWARDEN_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
set(POSTWARDEN_STAGE_DIR \"${PROJECT_BINARY_DIR}/install-stage\")")
install(SCRIPT ${CMAKE_CURRENT_LIST_DIR}/install_files.cmake)
