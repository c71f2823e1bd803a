# install_files.cmake — run by `cmake --install` (see install.cmake) with the prefix it installs
# to: the configuration, the systemd units with that prefix's paths, their sysusers.d entry.
#
#   prefix /usr: /usr/sbin/postwarden-policyd, /etc/postwarden/postwarden.conf,
#                /usr/lib/systemd/system/postwarden-{policyd,milter}.service,
#                /usr/lib/sysusers.d/postwarden.conf
#   prefix P:    P/sbin/..., P/etc/postwarden/postwarden.conf, P/lib/systemd/system/..., ...
#
# DESTDIR is honoured (file(INSTALL) adds it); the units name the paths without it, as the
# installed system will see them.
set(prefix "${CMAKE_INSTALL_PREFIX}")
# As GNUInstallDirs does: /usr and / keep their configuration in /etc.
if(prefix STREQUAL "/usr" OR prefix STREQUAL "/")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${prefix}/etc")
endif()
string(REGEX REPLACE "^//" "/" SBINDIR "${prefix}/sbin")
set(CONFIG "${sysconfdir}/postwarden/postwarden.conf")

foreach(unit postwarden-policyd postwarden-milter)
  configure_file("${POSTWARDEN_SOURCE_DIR}/contrib/systemd/${unit}.service.in"
                 "${POSTWARDEN_STAGE_DIR}/${unit}.service" @ONLY)
endforeach()
file(INSTALL "${POSTWARDEN_STAGE_DIR}/postwarden-policyd.service"
             "${POSTWARDEN_STAGE_DIR}/postwarden-milter.service"
     DESTINATION "${prefix}/lib/systemd/system")
file(INSTALL "${POSTWARDEN_SOURCE_DIR}/contrib/systemd/postwarden.sysusers"
     DESTINATION "${prefix}/lib/sysusers.d" RENAME postwarden.conf)

# An operator's configuration is never overwritten: a reinstall leaves it as it is.
if(EXISTS "$ENV{DESTDIR}${CONFIG}")
  message(STATUS "Keeping: $ENV{DESTDIR}${CONFIG} (the shipped one is conf/postwarden.conf)")
else()
  file(INSTALL "${POSTWARDEN_SOURCE_DIR}/conf/postwarden.conf"
       DESTINATION "${sysconfdir}/postwarden"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
