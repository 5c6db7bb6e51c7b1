# bash completion for arborctl(8)                         -*- shell-script -*-
#
# Commands, their options, and unit names. Unit names come from the running
# arbord (`arborctl --json status`, asked through the same -r DIR the command
# line gives), so they are the names arbord knows right now; when arbord
# cannot be reached nothing is offered. Names match [A-Za-z0-9][A-Za-z0-9_.-]*,
# so a fixed pattern picks them out of the compact JSON without a JSON tool.

# The units arbord reports: all of them, or with $1 = service or supervisor
# only those of that kind.
_arborctl_units()
{
    local kind=${1:-[a-z]*} runtime=() json
    local i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -r) runtime=(-r "${words[i + 1]}") ;;
            --runtime)
                # bash splits "--runtime=DIR" into three words at the "=".
                if [[ ${words[i + 1]} == = ]]; then
                    runtime=(-r "${words[i + 2]}")
                else
                    runtime=(-r "${words[i + 1]}")
                fi
                ;;
            --runtime=*) runtime=(-r "${words[i]#--runtime=}") ;;
        esac
    done
    # A stuck arbord must not hang the shell: arborctl gives up after 10s by
    # itself; timeout(1), where there is one, makes it 2.
    if type -P timeout >/dev/null; then
        json=$(timeout 2 "${words[0]}" "${runtime[@]}" --json status 2>/dev/null)
    else
        json=$("${words[0]}" "${runtime[@]}" --json status 2>/dev/null)
    fi
    printf '%s\n' "$json" |
        grep -o "\"name\":\"[A-Za-z0-9_.-]*\",\"kind\":\"$kind\"" |
        sed 's/^"name":"\([^"]*\)".*/\1/'
}

_arborctl()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="status start stop restart kill reload upgrade reexec logs wait send mailbox shutdown help"
    local global_opts="-r --runtime --json -h --help -V --version"

    # The values of options first ("--runtime=DIR" arrives as three words).
    if [[ $prev == = && ${words[cword - 2]} == --runtime ]]; then
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return
    fi
    case $prev in
        -r | --runtime)
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return
            ;;
        -s | --signal)
            mapfile -t COMPREPLY < <(compgen -W "$(compgen -A signal | sed 's/^SIG//')" -- "${cur#SIG}")
            return
            ;;
        -n | --lines | --timeout)
            return
            ;;
    esac

    # Find the command: the first word that is not an option or its value.
    local i command="" command_at=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -r) ((i++)) ;;
            --runtime)
                if [[ ${words[i + 1]} == = ]]; then ((i += 2)); else ((i++)); fi
                ;;
            -* | =) ;;
            *)
                command=${words[i]}
                command_at=$i
                break
                ;;
        esac
    done

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$global_opts" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return
    fi

    local opts="--json -h --help" units="" one=""
    case $command in
        status) units=all ;;
        start | stop | restart) opts+=" --no-block" units=all ;;
        kill) opts+=" -s --signal" units=all ;;
        logs) opts+=" -f --follow -n --lines" units=service one=1 ;;
        wait) opts+=" --timeout" units=all one=1 ;;
        send) opts+=" --no-block" units=service one=1 ;;
        mailbox | upgrade) units=service one=1 ;;
        help)
            ((cword == command_at + 1)) && mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
            return
            ;;
        reload | reexec | shutdown) ;;
        *) return ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        return
    fi
    [[ -z $units ]] && return

    # Commands of one NAME complete only their first argument.
    if [[ -n $one ]]; then
        local positional=0
        for ((i = command_at + 1; i < cword; i++)); do
            case ${words[i]} in
                -s | --signal | -n | --lines | --timeout | -r | --runtime) ((i++)) ;;
                -*) ;;
                *) ((positional++)) ;;
            esac
        done
        ((positional > 0)) && return
    fi

    local kind=""
    [[ $units == service ]] && kind=service
    mapfile -t COMPREPLY < <(compgen -W "$(_arborctl_units $kind)" -- "$cur")
}

complete -F _arborctl arborctl
