# install_files.cmake — run by `cmake --install` (see install.cmake) with the prefix it installs
# to: the configuration, the systemd units with that prefix's paths, their sysusers.d entry, and
# the tmpfiles.d entry that keeps the configuration (it may hold [redis] password) mode 0640,
# owner root, group postwarden: readable by the daemons, not by every local user.
#
#   prefix /usr: /usr/sbin/postwarden-policyd, /etc/postwarden/postwarden.conf,
#                /usr/lib/systemd/system/postwarden-{policyd,milter}.service,
#                /usr/lib/sysusers.d/postwarden.conf, /usr/lib/tmpfiles.d/postwarden.conf
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
# systemd-tmpfiles --create postwarden.conf (and every boot) sets the configuration's owner,
# group and mode, once systemd-sysusers has made the group.
file(WRITE "${POSTWARDEN_STAGE_DIR}/postwarden.tmpfiles"
     "# postwarden.conf may hold [redis] password: readable by root and the daemons only.\n"
     "z ${CONFIG} 0640 root postwarden -\n")
file(INSTALL "${POSTWARDEN_STAGE_DIR}/postwarden.tmpfiles"
     DESTINATION "${prefix}/lib/tmpfiles.d" RENAME postwarden.conf)

# An operator's configuration is never overwritten: a reinstall leaves it as it is.
if(EXISTS "$ENV{DESTDIR}${CONFIG}")
  message(STATUS "Keeping: $ENV{DESTDIR}${CONFIG} (the shipped one is conf/postwarden.conf)")
else()
  file(INSTALL "${POSTWARDEN_SOURCE_DIR}/conf/postwarden.conf"
       DESTINATION "${sysconfdir}/postwarden"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
  # Installed as root into the running system with the group there: the daemons can read it at
  # once. Otherwise (a package, an image, before systemd-sysusers) the tmpfiles.d entry, or the
  # Dockerfile, gives it its group.
  if("$ENV{DESTDIR}" STREQUAL "")
    execute_process(COMMAND getent group postwarden RESULT_VARIABLE no_group OUTPUT_QUIET)
    if(no_group EQUAL 0)
      execute_process(COMMAND chgrp postwarden "${CONFIG}" RESULT_VARIABLE failed)
      if(failed)
        message(WARNING "could not chgrp postwarden ${CONFIG}: the daemons may not read it")
      endif()
    else()
      message(STATUS "${CONFIG} is mode 0640: create the user (systemd-sysusers), then "
                     "systemd-tmpfiles --create postwarden.conf gives it the group postwarden")
    endif()
  endif()
endif()
